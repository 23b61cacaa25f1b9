"""Flow sources shared by the SLA tests."""

NIGHTLY = """id: nightly
namespace: company.data
tasks:
  - id: hello
    type: Log
    message: hi
"""
