"""Test support shared by the suites and the benchmarks: a throwaway PostgreSQL cluster
(``pgcluster``), scripted SMTP/IMAP dialogues over real sockets (``dialogue``) and mail helpers
(``mail``)."""
