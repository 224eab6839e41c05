// Package e2e tests syncnode as a user runs it: the real syncnode binary,
// built once by TestMain, run as `syncnode run` processes (each with its own
// data directory, home and XDG directories, so no user configuration is
// read) and driven by the CLI and the local API, also run as processes or
// over HTTP.
//
// Network hygiene: a test sends traffic only to 127.0.0.0/8 or inside
// network namespaces it creates. No process runs the DHT with its default
// (public) bootstrap peers, and none runs mDNS outside a test-made
// namespace; the harness refuses such a command line.
//
// The namespace tests (mDNS, partition) need root and the `ip` tool
// (iproute2); they skip with a message without them.
//
// Run them with
//
//	go test -count=1 ./test/e2e/ -v
package e2e
