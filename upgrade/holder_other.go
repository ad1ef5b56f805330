//go:build !linux

package upgrade

// unknownHolder says who holds an address holderOf could not name.
const unknownHolder = "held by another process"

// holderOf cannot tell who holds an address on this platform.
func holderOf(network, addr string) string { return "" }
