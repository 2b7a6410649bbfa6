# Convenience recipes for people who have `just`; each calls ./x, which is
# what the README and CI use.

dev *ARGS:
    ./x dev {{ARGS}}

test:
    ./x test

deny:
    ./x deny

bench *ARGS:
    ./x bench {{ARGS}}

bench-setup:
    ./x bench-setup

fuzz *ARGS:
    ./x fuzz {{ARGS}}

chaos *ARGS:
    ./x chaos {{ARGS}}
