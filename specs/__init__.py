"""Documents generated from the running code: the AsyncAPI description of every channel.

It sits above both the token service and the audit worker, since it documents both;
nothing imports it.
"""
