// Package kongclient builds the HTTP client every Kong Admin API call goes
// through (TLS, client certificate, admin token) and probes a Kong before the
// controller relies on it: version, database mode and router flavor.
package kongclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/kong/go-kong/kong"
)

// DefaultHeaderName is the header Kong reads the admin token from.
const DefaultHeaderName = "Kong-Admin-Token"

// ClientOptions configure NewHTTPClient.
type ClientOptions struct {
	// CACertFile and CACertPEM name the CAs that sign the Admin API's
	// certificate; either or both. When neither is set the system roots
	// are used.
	CACertFile string
	CACertPEM  []byte
	// ClientCertFile and ClientKeyFile, together, enable mutual TLS.
	ClientCertFile, ClientKeyFile string
	// TLSSkipVerify disables server certificate verification.
	TLSSkipVerify bool
	// TLSServerName overrides the name checked in the server certificate
	// (Admin API addresses are usually pod IPs).
	TLSServerName string
	// Token, when set, is sent in HeaderName on every request.
	Token string
	// HeaderName defaults to DefaultHeaderName.
	HeaderName string
	// Timeout bounds each request as a whole; 0 means no limit beyond the
	// caller's context.
	Timeout time.Duration
	// Transport, when set, carries requests instead of a new http.Transport
	// (an in-memory network in tests and the simulator). TLS options
	// cannot be combined with it.
	Transport http.RoundTripper
}

// NewHTTPClient returns a client for the Kong Admin API configured by o.
func NewHTTPClient(o ClientOptions) (*http.Client, error) {
	var rt http.RoundTripper
	if o.Transport != nil {
		if o.CACertFile != "" || len(o.CACertPEM) > 0 || o.ClientCertFile != "" || o.ClientKeyFile != "" || o.TLSSkipVerify || o.TLSServerName != "" {
			return nil, errors.New("kongclient: TLS options cannot be combined with a custom Transport")
		}
		rt = o.Transport
	} else {
		tlsConfig, err := tlsConfigFor(o)
		if err != nil {
			return nil, err
		}
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = tlsConfig
		rt = t
	}
	if o.Token != "" {
		name := o.HeaderName
		if name == "" {
			name = DefaultHeaderName
		}
		rt = &headerTransport{base: rt, name: name, value: o.Token}
	}
	return &http.Client{Transport: rt, Timeout: o.Timeout}, nil
}

func tlsConfigFor(o ClientOptions) (*tls.Config, error) {
	c := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         o.TLSServerName,
		InsecureSkipVerify: o.TLSSkipVerify, //nolint:gosec // the operator asked for it explicitly
	}
	if o.CACertFile != "" || len(o.CACertPEM) > 0 {
		pool := x509.NewCertPool()
		if o.CACertFile != "" {
			pem, err := os.ReadFile(o.CACertFile)
			if err != nil {
				return nil, fmt.Errorf("kongclient: CACertFile: %w", err)
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("kongclient: CACertFile %s: no PEM certificate found", o.CACertFile)
			}
		}
		if len(o.CACertPEM) > 0 && !pool.AppendCertsFromPEM(o.CACertPEM) {
			return nil, errors.New("kongclient: CACertPEM: no PEM certificate found")
		}
		c.RootCAs = pool
	}
	switch {
	case o.ClientCertFile != "" && o.ClientKeyFile != "":
		cert, err := tls.LoadX509KeyPair(o.ClientCertFile, o.ClientKeyFile)
		if err != nil {
			return nil, fmt.Errorf("kongclient: ClientCertFile/ClientKeyFile: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	case o.ClientCertFile != "":
		return nil, errors.New("kongclient: ClientCertFile is set but ClientKeyFile is not")
	case o.ClientKeyFile != "":
		return nil, errors.New("kongclient: ClientKeyFile is set but ClientCertFile is not")
	}
	return c, nil
}

// headerTransport adds one header to every request.
type headerTransport struct {
	base        http.RoundTripper
	name, value string
}

func (t *headerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	// RoundTrippers must not modify the caller's request.
	r := req.Clone(req.Context())
	r.Header.Set(t.name, t.value)
	return t.base.RoundTrip(r)
}

// MinVersion is the oldest Kong the controller drives (DB-less POST /config
// with flatten_errors, router_flavor reported on GET /).
const MinVersion = "3.4.1"

var supported = kong.MustNewRange(">=" + MinVersion)

// Root is what GET / tells about a Kong node.
type Root struct {
	// Version is the version string Kong reported; Semver its parsed form.
	Version string
	Semver  kong.Version
	NodeID  string
	// Hostname is the node's host name (the pod name in Kubernetes).
	Hostname string
	// Database is configuration.database: "off" for DB-less, else the
	// database kind ("postgres").
	Database string
	// RouterFlavor is configuration.router_flavor.
	RouterFlavor string
	// Role is configuration.role ("traditional", "control_plane", …).
	Role string
}

// DBLess reports whether the node runs without a database.
func (r Root) DBLess() bool { return r.Database == "off" }

// Probe reads GET / from the Admin API at url and checks that the node is
// one the controller can drive: a parseable version no older than
// MinVersion, a router flavor and a database mode.
func Probe(ctx context.Context, client *http.Client, url string) (Root, error) {
	kc, err := kong.NewClient(&url, client)
	if err != nil {
		return Root{}, fmt.Errorf("kongclient: Admin API URL %q: %w", url, err)
	}
	req, err := kc.NewRequest(http.MethodGet, "/", nil, nil)
	if err != nil {
		return Root{}, fmt.Errorf("kongclient: GET %s/: %w", url, err)
	}
	var body bytes.Buffer
	if _, err := kc.Do(ctx, req, &body); err != nil {
		return Root{}, fmt.Errorf("kongclient: GET %s/: %w", url, err)
	}
	root, err := ParseRoot(body.Bytes())
	if err != nil {
		return Root{}, fmt.Errorf("kongclient: GET %s/: %w", url, err)
	}
	return root, nil
}

// ParseRoot reads and validates a GET / answer.
func ParseRoot(raw []byte) (Root, error) {
	var body struct {
		Version       string `json:"version"`
		NodeID        string `json:"node_id"`
		Hostname      string `json:"hostname"`
		Configuration struct {
			Database     string `json:"database"`
			RouterFlavor string `json:"router_flavor"`
			Role         string `json:"role"`
		} `json:"configuration"`
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		return Root{}, fmt.Errorf("not a Kong root document: %w", err)
	}
	if body.Version == "" {
		return Root{}, errors.New(`field "version" is missing`)
	}
	v, err := kong.ParseSemanticVersion(body.Version)
	if err != nil {
		return Root{}, fmt.Errorf(`field "version": cannot parse %q: %w`, body.Version, err)
	}
	if !supported(v) {
		return Root{}, fmt.Errorf(`field "version": Kong %s is older than the minimum supported %s`, body.Version, MinVersion)
	}
	if body.Configuration.RouterFlavor == "" {
		return Root{}, errors.New(`field "configuration.router_flavor" is missing`)
	}
	if body.Configuration.Database == "" {
		return Root{}, errors.New(`field "configuration.database" is missing`)
	}
	return Root{
		Version:      body.Version,
		Semver:       v,
		NodeID:       body.NodeID,
		Hostname:     body.Hostname,
		Database:     body.Configuration.Database,
		RouterFlavor: body.Configuration.RouterFlavor,
		Role:         body.Configuration.Role,
	}, nil
}
