# Convenience recipes for people who have `just`; each calls ./x, which is
# what the README and CI use.

test:
    ./x test

deny:
    ./x deny
