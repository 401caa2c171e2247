"""The directory: practitioners, organisations, their activities, MSSanté mailboxes (BAL) and
patients (INS), as an operator keeps them.

- :mod:`directory.ins` and :mod:`directory.idnat`: pure format modules (INS matricule and key,
  INS OIDs; IdNat of practitioners and structures, RPPS Luhn key). No storage import.
- :mod:`directory.models`: the tables (migration ``0005_directory``).
- :mod:`directory.extracts`: streaming readers of the Annuaire Santé public extracts
  ``PS_LibreAcces_Personne_activite`` and ``Extraction_Correspondance_MSSante`` (pipe-delimited
  UTF-8, header row, trailing ``|``; columns found by header name).
- :mod:`directory.load`: the bulk import into SQLite or PostgreSQL (re-import updates changed
  rows and deactivates vanished ones).
- :mod:`directory.synth`: format-faithful synthetic extracts.
- :mod:`directory.search`: accent- and case-insensitive prefix search over SQLite FTS5 or
  PostgreSQL full text.
- :mod:`directory.fhir`: FHIR R4 Practitioner, PractitionerRole and Organization, shaped like
  the Annuaire Santé FHIR API (MSSanté mailboxes as ``telecom`` with the ANS extensions).
- :mod:`directory.lookup`: the questions SMTP asks (is this mailbox active, may this account
  send as that address).

Specifications: ANS Annuaire Santé extracts (PS_LibreAcces, Extraction_Correspondance_MSSante),
ANS Annuaire Santé FHIR API v2 (FHIR R4), TRE_R257-TypeBAL, TRE_G15-ProfessionSante,
TRE_R38-SpecialiteOrdinale, RNIV identity statuses, INS (NIR/NIA) OIDs.
"""
