"""close-reports: the command line (``close-pipeline``) over the dlt source ``close_reports.source``
(``sources/close`` in the repository), the embedded Close ``close_reports.simulator`` and the
dbt project."""
