package main

// shimArg is the hidden first argument of the LISTEN_PID exec shim.
const shimArg = "__handoff-exec"

// execShim is a placeholder until the supervisor lands.
func execShim(args []string) int { return exitUsage }

// runCmd is a placeholder until the supervisor lands.
func runCmd(args []string) int { return exitUsage }
