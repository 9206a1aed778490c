package gosqlaotel

import (
	"context"

	"github.com/gosqla/gosqla/asyncengine"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

type metricProvider = metric.MeterProvider

// WithMeterProvider sets the provider of RegisterMetrics' meter (default:
// otel.GetMeterProvider()).
func WithMeterProvider(mp metric.MeterProvider) Option { return func(o *options) { o.mp = mp } }

// RegisterMetrics exposes e's pool and worker statistics (Engine.Stats, Workers().Stats) as
// asynchronous instruments, read when the meter's reader collects; poolName tells engines apart
// (attribute db.client.connection.pool.name). Call the returned function to stop.
//
// Instruments (OpenTelemetry's database client names where they exist):
//
//	db.client.connection.count            connections open, by db.client.connection.state (idle, used)
//	db.client.connection.max              most connections open at once (0: no limit)
//	db.client.connection.idle.max         pool_size
//	db.client.connection.pending_requests checkouts waiting
//	db.client.connection.timeouts         checkouts that gave up after pool_timeout
//	gosqla.pool.overflow                  connections beyond pool_size (negative while fewer are open)
//	gosqla.pool.waits                     checkouts that had to wait
//	gosqla.pool.wait_time                 seconds checkouts spent waiting, in total
//	gosqla.pool.connects, .connect_errors, .closes, .invalidations, .leaks
//	gosqla.pool.round_trips               round trips to the server (native PostgreSQL driver)
//	gosqla.workers.size, .started, .running, .queued
//	gosqla.workers.submitted, .completed, .panics, .direct
func RegisterMetrics(e *asyncengine.Engine, poolName string, opts ...Option) (func() error, error) {
	o := build(opts)
	mp := o.mp
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter(ScopeName)
	pool := attribute.String("db.client.connection.pool.name", poolName)
	system := attribute.String("db.system.name", string(e.Config().Dialect))
	common := metric.WithAttributes(pool, system)
	idle := metric.WithAttributes(pool, system, attribute.String("db.client.connection.state", "idle"))
	used := metric.WithAttributes(pool, system, attribute.String("db.client.connection.state", "used"))

	var err error
	gauge := func(name, unit, desc string) metric.Int64ObservableGauge {
		if err != nil {
			return nil
		}
		var g metric.Int64ObservableGauge
		g, err = m.Int64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
		return g
	}
	updown := func(name, unit, desc string) metric.Int64ObservableUpDownCounter {
		if err != nil {
			return nil
		}
		var g metric.Int64ObservableUpDownCounter
		g, err = m.Int64ObservableUpDownCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		return g
	}
	counter := func(name, unit, desc string) metric.Int64ObservableCounter {
		if err != nil {
			return nil
		}
		var c metric.Int64ObservableCounter
		c, err = m.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		return c
	}
	count := updown("db.client.connection.count", "{connection}", "Connections open, by state")
	maxOpen := updown("db.client.connection.max", "{connection}", "Most connections open at once; 0 means no limit")
	idleMax := updown("db.client.connection.idle.max", "{connection}", "Idle connections kept (pool_size)")
	pending := updown("db.client.connection.pending_requests", "{request}", "Checkouts waiting for a connection")
	timeouts := counter("db.client.connection.timeouts", "{timeout}", "Checkouts that gave up after pool_timeout")
	overflow := gauge("gosqla.pool.overflow", "{connection}", "Connections open beyond pool_size (negative while fewer are open)")
	waits := counter("gosqla.pool.waits", "{checkout}", "Checkouts that had to wait")
	connects := counter("gosqla.pool.connects", "{connection}", "Physical connections opened")
	connectErrors := counter("gosqla.pool.connect_errors", "{error}", "Failed connection attempts")
	closes := counter("gosqla.pool.closes", "{connection}", "Physical connections closed")
	invalidations := counter("gosqla.pool.invalidations", "{connection}", "Connections invalidated")
	leaks := counter("gosqla.pool.leaks", "{connection}", "Connections garbage-collected while checked out")
	trips := counter("gosqla.pool.round_trips", "{round_trip}", "Round trips to the server on checked-out connections")
	wSize := updown("gosqla.workers.size", "{goroutine}", "Worker goroutines at most")
	wStarted := updown("gosqla.workers.started", "{goroutine}", "Worker goroutines started")
	wRunning := updown("gosqla.workers.running", "{task}", "Tasks running on the workers")
	wQueued := updown("gosqla.workers.queued", "{task}", "Tasks waiting for a worker")
	wSubmitted := counter("gosqla.workers.submitted", "{task}", "Tasks submitted")
	wCompleted := counter("gosqla.workers.completed", "{task}", "Tasks completed")
	wPanics := counter("gosqla.workers.panics", "{task}", "Tasks that panicked")
	wDirect := counter("gosqla.workers.direct", "{call}", "Blocking driver calls run beside busy workers")
	if err != nil {
		return nil, err
	}
	waitTime, err := m.Float64ObservableCounter("gosqla.pool.wait_time", metric.WithUnit("s"), metric.WithDescription("Time checkouts spent waiting, in total"))
	if err != nil {
		return nil, err
	}
	reg, err := m.RegisterCallback(func(_ context.Context, ob metric.Observer) error {
		s := e.Stats()
		ob.ObserveInt64(count, int64(s.CheckedIn), idle)
		ob.ObserveInt64(count, int64(s.CheckedOut), used)
		ob.ObserveInt64(maxOpen, int64(s.MaxOpen), common)
		ob.ObserveInt64(idleMax, int64(s.Size), common)
		ob.ObserveInt64(pending, int64(s.Waiting), common)
		ob.ObserveInt64(timeouts, s.Timeouts, common)
		ob.ObserveInt64(overflow, int64(s.Overflow), common)
		ob.ObserveInt64(waits, s.Waits, common)
		ob.ObserveFloat64(waitTime, s.WaitTime.Seconds(), common)
		ob.ObserveInt64(connects, s.Connects, common)
		ob.ObserveInt64(connectErrors, s.ConnectErrors, common)
		ob.ObserveInt64(closes, s.Closes, common)
		ob.ObserveInt64(invalidations, s.Invalidations, common)
		ob.ObserveInt64(leaks, s.Leaks, common)
		ob.ObserveInt64(trips, s.RoundTrips, common)
		w := e.Workers().Stats()
		ob.ObserveInt64(wSize, int64(w.Size), common)
		ob.ObserveInt64(wStarted, int64(w.Started), common)
		ob.ObserveInt64(wRunning, w.Running, common)
		ob.ObserveInt64(wQueued, int64(w.Queued), common)
		ob.ObserveInt64(wSubmitted, w.Submitted, common)
		ob.ObserveInt64(wCompleted, w.Completed, common)
		ob.ObserveInt64(wPanics, w.Panics, common)
		ob.ObserveInt64(wDirect, w.Direct, common)
		return nil
	}, count, maxOpen, idleMax, pending, timeouts, overflow, waits, waitTime, connects, connectErrors, closes,
		invalidations, leaks, trips, wSize, wStarted, wRunning, wQueued, wSubmitted, wCompleted, wPanics, wDirect)
	if err != nil {
		return nil, err
	}
	return reg.Unregister, nil
}
