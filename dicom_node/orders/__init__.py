"""Orders in: the RIS's ORM^O01 / OMI^O23 over MLLP (:mod:`.listener`), recorded by accession
number (:mod:`.record`) so routing rules can test ``order.*`` and a STAT order goes first."""
