"""Page templates of the API: the OpenAPI docs page; the console's are in console/.

A package so that a wheel install carries the files (setup.cfg package_data).
"""
