# Ids are 64-bit signed integers in every database we support.
MAX_ID = 2**63 - 1
