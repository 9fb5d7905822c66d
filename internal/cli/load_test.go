package cli

import (
	"bytes"
	"strings"
	"testing"
)

// Bad flags exit 2 with one line and no report. That nothing is sent is checked against a
// real server in TestIntegrationLoadBadFlagsSendNothing.
func TestLoadBadFlags(t *testing.T) {
	const url = "--url=http://127.0.0.1:9/"
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"load"}, "--url is required"},
		{[]string{"load", "--url", "127.0.0.1:8000"}, "http://"},
		{[]string{"load", "--url", "http://[::1"}, "does not parse"},
		{[]string{"load", "--url", "http:///nohost"}, "has no host"},
		{[]string{"load", url, "--vus", "0"}, "vus must be at least 1"},
		{[]string{"load", url, "--vus", "-2"}, "vus must be at least 1"},
		{[]string{"load", url, "--rate", "0"}, "rate must be"},
		{[]string{"load", url, "--rate", "-5"}, "rate must be"},
		{[]string{"load", url, "--rate", "NaN"}, "rate must be"},
		{[]string{"load", url, "--rate", "lots"}, "invalid argument"},
		{[]string{"load", url, "--duration", "-1s"}, "duration -1s is negative"},
		{[]string{"load", url, "--duration", "1s", "--think", "2s"}, "longer than the run"},
		{[]string{"load", url, "--timeout", "-1s"}, "timeout -1s is negative"},
		{[]string{"load", url, "--timeout", "5m"}, "longer than 1m0s"},
		{[]string{"load", url, "--timeout", "0"}, "--timeout 0 would wait forever"},
		{[]string{"load", url, "--method", "GE T"}, "is not a valid HTTP method"},
		{[]string{"load", url, "--connections", "pool"}, "use new or reuse"},
		{[]string{"load", url, "--rate", "10", "--vus", "3"}, "--vus and --think are for the closed model"},
		{[]string{"load", url, "--max-in-flight", "3"}, "--max-in-flight is for the open model"},
		{[]string{"load", url, "--rate", "10", "--max-in-flight", "-1"}, "max in flight"},
		{[]string{"load", url, "--max-error-rate", "5"}, "not a fraction"},
		{[]string{"load", url, "--max-error-rate", "-0.1"}, "not a fraction"},
		{[]string{"load", url, "--json", t.TempDir() + "/no/such/dir/out.json"}, "--json"},
		{[]string{"load", url, "extra"}, "unknown command"},
		{[]string{"load", url, "--bogus"}, "unknown flag"},
	}
	for _, tc := range cases {
		var stdout, stderr bytes.Buffer
		code := Main(tc.args, Streams{In: strings.NewReader(""), Out: &stdout, ErrOut: &stderr})
		msg := stderr.String()
		if code != ExitBadArgs || !strings.Contains(msg, tc.want) || strings.Count(msg, "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and one line containing %q", tc.args, code, msg, tc.want)
		}
		if stdout.Len() != 0 {
			t.Errorf("%v: printed a report for bad input: %q", tc.args, stdout.String())
		}
	}
}
