//go:build unix && !race

package harness

const raceBuild = false
