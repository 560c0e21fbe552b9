"""The central system side: ``CSMS``, its ``Station`` handles, and who may connect."""
