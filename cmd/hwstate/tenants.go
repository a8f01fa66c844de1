package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"

	"github.com/hwstate/hwstate/graph"
	"github.com/hwstate/hwstate/worker"
)

// Multi-tenant mode (CONTRACT.md section 6): HWSTATE_TENANTS names the tenants file.

// tenantBase is what a tenant of the file has unless the file says otherwise: the
// deployment's cloud, Graph URL, app registration and rate.
func (s *settings) tenantBase() worker.Tenant {
	return worker.Tenant{Cloud: s.GraphCloud, GraphBaseURL: s.GraphBaseURL, ClientID: s.ClientID, Rate: s.Rate, Burst: s.Burst}
}

// tenants reads the tenants file and checks that a Graph client can be made for every tenant
// it lists, so that a deployment missing its credentials fails at start, not event by event.
func (s *settings) tenants(signIn ...graph.SignInOption) ([]worker.Tenant, error) {
	listed, err := worker.ReadTenants(s.Tenants, s.tenantBase())
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, t := range listed {
		if _, err := s.tenantClient(t, signIn...); err != nil {
			errs = append(errs, err)
		}
	}
	return listed, errors.Join(errs...)
}

// tenantClient is a tenant's Graph client: the deployment's settings with the tenant's
// cloud, Graph URL and app registration, signing in to the tenant (a multi-tenant app each
// customer consented to), with the tenant's own secret or certificate file when the file
// names one. A fixed token (HWSTATE_GRAPH_TOKEN) serves every tenant.
func (s settings) tenantClient(t worker.Tenant, signIn ...graph.SignInOption) (worker.Creator, error) {
	s.GraphCloud, s.GraphBaseURL, s.ClientID = t.Cloud, t.GraphBaseURL, t.ClientID
	if s.GraphToken.value == "" {
		s.TenantID = t.ID
	}
	for _, own := range []struct {
		file      string
		set, drop *secret
		flag      string
	}{
		{t.ClientSecretFile, &s.ClientSecret, &s.ClientCert, "client-secret"},
		{t.ClientCertFile, &s.ClientCert, &s.ClientSecret, "client-cert"},
	} {
		if own.file == "" {
			continue
		}
		*own.set, *own.drop = secret{flag: own.flag, file: own.file}, secret{}
		if err := own.set.resolve(); err != nil {
			return nil, fmt.Errorf("tenant %s: %w", t.ID, err)
		}
	}
	c, err := s.graphClient(signIn...)
	if err != nil {
		return nil, fmt.Errorf("tenant %s: %w", t.ID, err)
	}
	return c, nil
}

// watchTenants reads the tenants file again on SIGHUP and when it changes, and hands every
// valid new list to the worker; an invalid one is logged and the old list kept.
func (s *settings) watchTenants(ctx context.Context, w *worker.Worker, listed []worker.Tenant, m *worker.Metrics, log *zap.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	reload := make(chan struct{}, 1)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-hup:
				select {
				case reload <- struct{}{}:
				default:
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	worker.WatchTenants(ctx, s.Tenants, s.tenantBase(), reload, w.SetTenants,
		worker.WatchFrom(listed), worker.WatchMetrics(m), worker.WatchLogger(log))
}
