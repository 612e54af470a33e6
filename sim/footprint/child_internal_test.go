package footprint

import (
	"bytes"
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// TestChildParsesFlagsAsTheBinary starts the profile mode's child with a
// flag konductor does not have: it must refuse it as the binary does.
func TestChildParsesFlagsAsTheBinary(t *testing.T) {
	bin, env := childCommand([]string{"--ingress-class=kong", "--no-such-flag"})
	cmd := exec.CommandContext(t.Context(), bin)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Fatalf("child exited with %v, want status 2; stderr:\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "no-such-flag") {
		t.Errorf("stderr does not name the bad flag:\n%s", stderr.String())
	}
}
