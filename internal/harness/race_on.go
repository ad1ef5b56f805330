//go:build unix && race

package harness

// raceBuild: this test binary is race-built, and so are the programs it
// builds, so that the real multi-process hand-overs are race-checked too.
const raceBuild = true
