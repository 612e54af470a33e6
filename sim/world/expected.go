package world

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"konductor.dev/controller/snapshot"
	"konductor.dev/controller/translate"
	"konductor.dev/sim/apiserver"
	"konductor.dev/sim/kong"
)

// expectedHash is the Kong configuration hash the final inputs call for,
// computed independently of the replicas: a fresh cache over a healthy
// client, the translator, and a scratch Kong node that loads the result.
func (w *World) expectedHash(ctx context.Context) (string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cfg := snapshot.Config{Client: w.api.Client("oracle"), IngressClass: ingressClass}
	if w.cfg.KeyAuth {
		cfg.Dynamic = kongResources(cfg.Client.(*apiserver.View))
	}
	c, err := snapshot.New(cfg)
	if err != nil {
		return "", err
	}
	c.Start(ctx)
	defer func() {
		cancel() // the informers stop on ctx; Shutdown waits for them
		c.Shutdown()
	}()
	if !c.WaitForSync(ctx) {
		return "", ctx.Err()
	}
	res := translate.Translate(c.Snapshot(), translate.Options{})
	node, err := kong.NewNode(kong.Options{NodeID: "00000000-0000-4000-8000-999999999999", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return "", err
	}
	defer node.Close()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://oracle/config", bytes.NewReader(res.Body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := kong.NewInMemoryTransport(node.Admin()).RoundTrip(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		b, _ := io.ReadAll(resp.Body)
		return "", fmt.Errorf("scratch Kong rejected the translated configuration: %d %s", resp.StatusCode, b)
	}
	return node.ConfigHash(), nil
}
