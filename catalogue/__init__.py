"""The catalogue of referenced health apps (design.md §6, issue 10), in the image of the
"Mon espace santé" store: an editor submits a manifest by message, the operator reviews it
against the referencing criteria (use of the INS, of the professional directory, of the secure
messaging channel, security, ethics, interoperability) and references or refuses the app; a
patient connects a referenced app with scoped consent, and the app then acts through its APP
mailbox and certificate only within that consent, until the patient revokes it.

- :mod:`catalogue.models`: the tables (Alembic migration ``0013``);
- :mod:`catalogue.manifest`: the manifest's JSON Schema (Draft 2020-12) and our own limits;
- :mod:`catalogue.criteria`, :mod:`catalogue.scopes`, :mod:`catalogue.status`: the referencing
  criteria, the consent scopes, the statuses and decisions;
- :mod:`catalogue.registry`: apps, versions, reviews, decisions and the status history;
- :mod:`catalogue.consent`: patients' consents and each app's recent access;
- :mod:`catalogue.notices`: the messages sent to editors.
"""
