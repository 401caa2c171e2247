"""HTTP listeners on h11 (sans-I/O HTTP/1.1, RFC 9112): the PKI publication point (CRL,
OCSP, CA certificate) for now; the FHIR API later."""
