# The two commands of the README: `make run` (the development gateway) and `make test` (everything CI runs).
.PHONY: run test check build docs

run:
	go run ./cmd/cafgate dev --dir cafgate-dev

test:
	sh integration/ci.sh

build:
	go build -o bin/cafgate ./cmd/cafgate

docs:
	go run ./cmd/cafgate config doc > docs/config.md
