package cli

import (
	"strings"
	"testing"
)

// cobra's own argument and flag errors carry no type; they must still exit 2 with one line.
func TestCobraErrorsAreUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"nosuch"}, `unknown command "nosuch" for "gracelab"`},
		{[]string{"load", "--url"}, "flag needs an argument: --url"},
		{[]string{"demo", "-z"}, "unknown shorthand flag: 'z'"},
		{[]string{"demo", "--vus", "many"}, `invalid argument "many" for "--vus"`},
		{[]string{"report"}, "accepts 1 arg(s), received 0"},
		{[]string{"report", "a", "b"}, "accepts 1 arg(s), received 2"},
		{[]string{"serve"}, "accepts 1 arg(s), received 0"},
		{[]string{"cluster", "up", "extra"}, `unknown command "extra" for "gracelab cluster up"`},
		{[]string{"cluster", "down"}, `unknown command "down" for "gracelab cluster"`},
	} {
		code, stdout, stderr := runMain(tc.args...)
		if code != ExitBadArgs || stdout != "" || !strings.Contains(stderr, tc.want) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 and one line with %q", tc.args, code, stdout, stderr, tc.want)
		}
	}
}

func TestNoArgumentsPrintsHelp(t *testing.T) {
	code, stdout, stderr := runMain()
	if code != ExitOK || !strings.Contains(stdout, "Available Commands") || stderr != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}
