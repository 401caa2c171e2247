"""Tests of the certificate authority (`pki`): issuance, files on disk, TLS contexts."""
