package report

// words name what a report's scenarios went through: a rolling restart is a rollout that
// settles when no old pod is left; any other disruption (a deletion, an eviction, a drain,
// a kill, a scale-down) is no rollout, and the time it takes is its recovery.
type words struct {
	unit     string // "rollout" or "disruption": what a scenario repeats
	trigger  string // the per-unit table's column of when it started: "restart" or "triggered"
	duration string // the label of RolloutSeconds
}

// isRestart reports whether a scenario's disruption is the rolling restart ("" is).
func isRestart(kind string) bool { return kind == "" || kind == DisruptionRestart }

// wordsFor words the scenarios: rollouts when every one was restarted, else disruptions.
func wordsFor(scenarios ...Scenario) words {
	restarts, others := 0, 0
	for _, s := range scenarios {
		if isRestart(s.Disruption) {
			restarts++
		} else {
			others++
		}
	}
	switch {
	case others == 0:
		return words{unit: "rollout", trigger: "restart", duration: "rollout duration"}
	case restarts == 0:
		return words{unit: "disruption", trigger: "triggered", duration: "recovery time"}
	}
	return words{unit: "disruption", trigger: "triggered", duration: "rollout / recovery time"}
}

// durationNote says what the duration row measures.
func (w words) durationNote() string {
	const rollout = "Rollout duration runs from the restart to the moment no pod of the old revision is left."
	const recovery = "Recovery time runs from the disruption's trigger until the Deployment has settled again " +
		"(every pod ready, none terminating; for a scale or a drain, after the scale-back or the uncordon)."
	switch w.duration {
	case "rollout duration":
		return rollout
	case "recovery time":
		return recovery
	}
	return rollout + " " + recovery
}
