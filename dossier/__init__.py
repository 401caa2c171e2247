"""The patient's medical record (dossier): the formats that feed it.

Pure format modules, importing no storage or server code (design.md §1), so that the client
and the tests can use them alone:

* :mod:`dossier.xdm` builds and parses ``IHE_XDM.zip`` (IHE ITI TF-2b §3.32 "Distribute
  Document Set on Media", ITI-32; metadata per ITI TF-3 §4.2 and the XDM column of §4.3),
  with the French CI-SIS / DMP codes and restriction flags, refusing unsafe archives.
* :mod:`dossier.cda` reads and writes the header of HL7 CDA R2 documents (ANSI/HL7 CDA R2
  2005, CI-SIS "Volet Structuration minimale des documents de santé" header conventions).
* :mod:`dossier.ins` checks INS matricules (NIR/NIA key) and writes the XDS patientId.
* :mod:`dossier.subject` holds the MSSanté subject, PDF naming and X-MSS header rules (Réf#2
  ECO.2.1.3, ECO.2.1.6, ECO.2.4.1-2); :mod:`dossier.loinc` the DMP document types
  (JDV_J66-TypeCode-DMP subset); :mod:`dossier.versions` the "annule et remplace" rules
  (CDA R2 RPLC; errors 900/901).

Every refusal is a :class:`dossier.errors.DossierError` carrying the MSSanté integration
error code (900-906) it should become in an MDN.
"""
