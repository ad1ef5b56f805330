//go:build unix

package upgrade

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// readEnvFile reads the KEY=VALUE lines of Options.EnvFile.
func readEnvFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("environment file: %w", err)
	}
	defer f.Close()
	var env []string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" || strings.ContainsAny(k, " \t\x00") {
			return nil, fmt.Errorf("environment file %s, line %d: want KEY=VALUE, got %q", path, n, short(line))
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		if strings.ContainsRune(v, 0) {
			return nil, fmt.Errorf("environment file %s, line %d: %s holds a NUL byte", path, n, k)
		}
		env = append(env, k+"="+v)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("environment file %s: %w", path, err)
	}
	return env, nil
}

// mergeEnv returns base with the variables of add replacing its own, the
// last of add's winning: a process sees only the first of two entries of
// one name, and syscall.StartProcess passes both.
func mergeEnv(base, add []string) []string {
	if len(add) == 0 {
		return base
	}
	last := make(map[string]int, len(add))
	for i, kv := range add {
		k, _, _ := strings.Cut(kv, "=")
		last[k] = i
	}
	out := make([]string, 0, len(base)+len(add))
	for _, kv := range base {
		if k, _, _ := strings.Cut(kv, "="); !has(last, k) {
			out = append(out, kv)
		}
	}
	for i, kv := range add {
		if k, _, _ := strings.Cut(kv, "="); last[k] == i {
			out = append(out, kv)
		}
	}
	return out
}

func short(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

func has(m map[string]int, k string) bool {
	_, ok := m[k]
	return ok
}
