//go:build linux

package localkube

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/gracelab/gracelab/internal/manifest"
)

const envManifests = `apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {MODE: fast, LIMIT: "7"}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {token: s3cr3t}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: web}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web, tier: front}, annotations: {team: shop}}
    spec:
      serviceAccountName: web
      containers:
      - name: app
        image: test/app:v1
        ports: [{containerPort: 8080, name: http}]
        envFrom: [{configMapRef: {name: settings}, prefix: CFG_}]
        env:
        - {name: TOKEN, valueFrom: {secretKeyRef: {name: creds, key: token}}}
        - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
        - {name: TIER, valueFrom: {fieldRef: {fieldPath: "metadata.labels['tier']"}}}
        - {name: TEAM, valueFrom: {fieldRef: {fieldPath: "metadata.annotations['team']"}}}
        - {name: UID, valueFrom: {fieldRef: {fieldPath: metadata.uid}}}
        - {name: SA, valueFrom: {fieldRef: {fieldPath: spec.serviceAccountName}}}
        - {name: LISTEN, value: "$(POD_IP):8080 $$(POD_IP) $(NOPE)"}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 8080, targetPort: http}]
`

// TestIntegrationPodEnvFromConfigMapsSecretsAndDownwardAPI: a pod's process sees its
// environment as the kubelet would build it from the objects next to its Deployment.
func TestIntegrationPodEnvFromConfigMapsSecretsAndDownwardAPI(t *testing.T) {
	integration(t)
	t.Parallel()
	docs, err := manifest.Decode([]manifest.File{{Name: "a.yaml", Data: []byte(envManifests)}}, manifest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	honoured, skipped, err := manifest.Triage(docs, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(skipped) != 1 || skipped[0].Document.Kind() != "ServiceAccount" {
		t.Fatalf("skipped %+v, want the ServiceAccount", skipped)
	}
	c := startCluster(t, Options{Documents: honoured})
	pod := firstPod(t, c)
	resp, err := testClient.Get("http://" + pod.IP + ":8080/env")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var environ []string
	if err := json.NewDecoder(resp.Body).Decode(&environ); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/env: %d %v", resp.StatusCode, err)
	}
	env := map[string]string{}
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	want := map[string]string{
		"CFG_MODE": "fast", "CFG_LIMIT": "7", "TOKEN": "s3cr3t", "POD_IP": pod.IP, "TIER": "front", "TEAM": "shop",
		"SA": "web", "LISTEN": pod.IP + ":8080 $(POD_IP) $(NOPE)", "HOSTNAME": pod.Name,
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s=%q, want %q", k, env[k], v)
		}
	}
	if len(env["UID"]) != 36 {
		t.Errorf("UID=%q, want a UUID", env["UID"])
	}
}
