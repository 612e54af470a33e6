//go:build drills

package suite

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"konductor.dev/chaos/cli"
	"konductor.dev/chaos/drill"
	"konductor.dev/chaos/journal"
)

func TestDrills(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "konductor drills")
}

// repoRoot finds the repository by its go.work.
func repoRoot() string {
	dir, _ := os.Getwd()
	for d := dir; filepath.Dir(d) != d; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.work")); err == nil {
			return d
		}
	}
	return dir
}

var (
	root     = repoRoot()
	dir      = envOr("KONDUCTOR_DRILL_DIR", filepath.Join(root, "chaos", "drills"))
	out      = envOr("KONDUCTOR_DRILL_OUT", filepath.Join(root, "chaos", "out", "suite-"+time.Now().UTC().Format("20060102-150405")))
	drills   []*drill.Drill
	parseErr error
)

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func init() { drills, parseErr = drill.ParseDir(dir) }

var _ = Describe("drills", Ordered, func() {
	var opts cli.RunOptions
	BeforeAll(func() {
		Expect(parseErr).NotTo(HaveOccurred(), "drill files in %s", dir)
		kubeconfig := os.Getenv("KONDUCTOR_DRILL_KUBECONFIG")
		if kubeconfig == "" {
			why := "KONDUCTOR_DRILL_KUBECONFIG is not set: start a cluster (make build && bin/localcluster up) and set it, with KONDUCTOR_DRILL_PROVIDER=local; or run make drill"
			if os.Getenv("CI") == "true" {
				Fail(why)
			}
			Skip("SKIPPED (not passed): " + why)
		}
		opts = cli.RunOptions{Kubeconfig: kubeconfig, Provider: drill.Provider(envOr("KONDUCTOR_DRILL_PROVIDER", "any")),
			DeployDir: filepath.Join(root, "deploy"), Log: GinkgoWriter}
	})
	for _, d := range drills {
		It(d.Title, func(ctx SpecContext) {
			o := opts
			o.Out = filepath.Join(out, strings.TrimSuffix(filepath.Base(d.File), ".yaml"))
			res, err := cli.Run(ctx, o, []*drill.Drill{d})
			Expect(err).NotTo(HaveOccurred())
			Expect(res.Results).To(HaveLen(1))
			r := res.Results[0]
			AddReportEntry("report", res.Report.Markdown)
			Expect(r.Outcome).To(Equal(journal.OutcomePassed), "%s\nreport: %s", strings.Join(r.Failures, "\n"), res.Report.Markdown)
		}, NodeTimeout(d.Abort.MaxDuration.Or(drill.DefaultTimeout)+10*time.Minute))
	}
})
