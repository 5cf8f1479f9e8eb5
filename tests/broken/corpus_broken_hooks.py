"""A hooks file with a syntax error (tests/broken/48-*.yaml)."""

def parse_projects(answer, ctx)
    return []
