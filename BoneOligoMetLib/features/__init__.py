"""One named feature row per lesion (clin_, met_, ct_, pet_, petct_, dl_): the extraction settings,
radiomics with pyradiomics, and the resumable, parallel cohort extraction into one table."""
