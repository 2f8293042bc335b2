"""Templates compiled to Python by ``python -m fwgen.render``: generated, do not edit.

A module is used only while its SOURCE_SHA256 matches its template (see
``fwgen.render.TemplateLoader``).
"""
