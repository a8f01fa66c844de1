package deploy_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/rules"
	"gopkg.in/yaml.v3"
)

const rulesDir = root + "/deploy/prometheus"

// promParser is PromQL as Prometheus parses rules by default.
var promParser = parser.NewParser(parser.Options{})

// Every rule file parses and validates as Prometheus loads it (unknown fields refused,
// every expression parsed), and every alert links its runbook section.
func TestRuleFiles(t *testing.T) {
	runbook, err := os.ReadFile(filepath.Join(root, "docs/runbook.md"))
	if err != nil {
		t.Fatal(err)
	}
	groups, errs := rulefmt.ParseFile(filepath.Join(rulesDir, "alerts.yml"), false, model.UTF8Validation, promParser, slog.Default())
	for _, err := range errs {
		t.Error(err)
	}
	if groups == nil {
		t.FailNow()
	}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if _, err := promParser.ParseExpr(r.Expr); err != nil {
				t.Errorf("%s: %v", r.Alert, err)
			}
			url := r.Annotations["runbook_url"]
			_, anchor, _ := strings.Cut(url, "docs/runbook.md#")
			if anchor != strings.ToLower(r.Alert) || !strings.Contains(string(runbook), "\n## "+r.Alert+"\n") {
				t.Errorf("%s: runbook_url %q, want docs/runbook.md#%s and a section ## %s there", r.Alert, url, strings.ToLower(r.Alert), r.Alert)
			}
		}
	}
}

// prometheus.yml loads as Prometheus loads it, and its rule files are found where
// `promtool check config` looks: relative to the config file.
func TestPrometheusConfig(t *testing.T) {
	cfg, err := config.LoadFile(filepath.Join(rulesDir, "prometheus.yml"), false, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.RuleFiles) == 0 {
		t.Fatal("no rule files")
	}
	for _, rf := range cfg.RuleFiles {
		if files, err := filepath.Glob(rf); err != nil || len(files) == 0 {
			t.Errorf("rule files %q: none found (%v)", rf, err)
		}
	}
}

// ruleTests is promtool's unit test file format, the part alerts_test.yml uses.
type ruleTests struct {
	RuleFiles          []string       `yaml:"rule_files"`
	EvaluationInterval model.Duration `yaml:"evaluation_interval"`
	Tests              []struct {
		Interval    model.Duration `yaml:"interval"`
		InputSeries []struct {
			Series string `yaml:"series"`
			Values string `yaml:"values"`
		} `yaml:"input_series"`
		AlertRuleTests []struct {
			EvalTime  model.Duration `yaml:"eval_time"`
			Alertname string         `yaml:"alertname"`
			ExpAlerts []struct {
				ExpLabels map[string]string `yaml:"exp_labels"`
			} `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

// TestAlertRules runs alerts_test.yml as `promtool test rules` does, through Prometheus's
// rule engine, and checks that every alert has a case that fires it and one that does not.
func TestAlertRules(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(rulesDir, "alerts_test.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var suite ruleTests
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&suite); err != nil {
		t.Fatalf("alerts_test.yml: %v", err)
	}
	var files []string
	for _, f := range suite.RuleFiles {
		files = append(files, filepath.Join(rulesDir, f))
	}
	fires, spares := map[string]bool{}, map[string]bool{}
	for i, tc := range suite.Tests {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			var load strings.Builder
			fmt.Fprintf(&load, "load %s\n", tc.Interval)
			for _, s := range tc.InputSeries {
				fmt.Fprintf(&load, "  %s %s\n", s.Series, s.Values)
			}
			ll, err := promqltest.NewLazyLoader(load.String(), promqltest.LazyLoaderOpts{EnableAtModifier: true, EnableNegativeOffset: true})
			if err != nil {
				t.Fatal(err)
			}
			defer ll.Close()
			m := rules.NewManager(&rules.ManagerOptions{
				QueryFunc:    rules.EngineQueryFunc(ll.QueryEngine(), ll.Storage()),
				AppendableV2: ll.Storage(),
				Context:      context.Background(),
				NotifyFunc:   func(context.Context, string, ...*rules.Alert) {},
				Logger:       slog.New(slog.DiscardHandler),
			})
			groups, errs := m.LoadGroups(time.Duration(suite.EvaluationInterval), labels.EmptyLabels(), "", nil, false, files...)
			for _, err := range errs {
				t.Fatal(err)
			}
			var alerting []*rules.AlertingRule
			for _, g := range groups {
				for _, r := range g.Rules() {
					if ar, ok := r.(*rules.AlertingRule); ok {
						ar.SetRestored(true)
						alerting = append(alerting, ar)
					}
				}
			}
			// Expected firing alerts at each evaluation time, by alert name.
			checks := map[time.Duration][]int{}
			var end time.Duration
			for j, at := range tc.AlertRuleTests {
				checks[time.Duration(at.EvalTime)] = append(checks[time.Duration(at.EvalTime)], j)
				end = max(end, time.Duration(at.EvalTime))
			}
			start := time.Unix(0, 0).UTC()
			step := time.Duration(suite.EvaluationInterval)
			for off := time.Duration(0); off <= end; off += step {
				ts := start.Add(off)
				ll.WithSamplesTill(ts, func(err error) {
					if err != nil {
						t.Fatal(err)
					}
					for _, g := range groups {
						g.Eval(ll.Context(), ts)
						for _, r := range g.Rules() {
							if err := r.LastError(); err != nil {
								t.Fatalf("%s at %s: %v", r.Name(), off, err)
							}
						}
					}
				})
				for _, j := range checks[off] {
					at := tc.AlertRuleTests[j]
					var got, want []string
					for _, ar := range alerting {
						if ar.Name() != at.Alertname {
							continue
						}
						for _, a := range ar.ActiveAlerts() {
							if a.State == rules.StateFiring {
								got = append(got, a.Labels.String())
							}
						}
					}
					for _, e := range at.ExpAlerts {
						l := labels.FromMap(e.ExpLabels)
						b := labels.NewBuilder(l)
						b.Set(labels.AlertName, at.Alertname)
						want = append(want, b.Labels().String())
					}
					slices.Sort(got)
					slices.Sort(want)
					if !slices.Equal(got, want) {
						t.Errorf("%s at %s: firing %v, want %v", at.Alertname, off, got, want)
					}
					if len(want) > 0 {
						fires[at.Alertname] = true
					} else {
						spares[at.Alertname] = true
					}
				}
			}
		})
	}
	groups, _ := rulefmt.ParseFile(filepath.Join(rulesDir, "alerts.yml"), false, model.UTF8Validation, promParser, slog.Default())
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if !fires[r.Alert] || !spares[r.Alert] {
				t.Errorf("%s: a case that fires it %v, one that does not %v: want both", r.Alert, fires[r.Alert], spares[r.Alert])
			}
		}
	}
}
