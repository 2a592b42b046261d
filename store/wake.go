package store

import (
	"context"
	"database/sql"
	"sync"

	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riversqlite"
)

// SQLite has no LISTEN/NOTIFY. River's SQLite driver stands in with an outbox
// table (river_notification) that each listener polls every 50 ms, so a job
// inserted by this process would wait up to that long before this process's
// workers hear of it, and its webhook as long again. wakeDriver keeps River's
// outbox (other processes on the file still hear through it) and adds a
// shortcut inside one process: a notification written through any of db's River
// clients makes every listener of db read the outbox at once instead of at its
// next poll.
//
// The read cannot run ahead of the notification's transaction: the listener
// reads on db's one write connection, which the writing transaction holds until
// it commits or rolls back. A rolled-back notification is therefore never seen,
// and a committed one is seen as soon as the connection is free.
type wakeDriver struct {
	*riversqlite.Driver
	hub *wakeHub
}

func (d *wakeDriver) GetExecutor() riverdriver.Executor {
	return wakeExecutor{d.Driver.GetExecutor(), d.hub}
}

func (d *wakeDriver) UnwrapExecutor(tx *sql.Tx) riverdriver.ExecutorTx {
	return wakeExecutorTx{d.Driver.UnwrapExecutor(tx), d.hub}
}

func (d *wakeDriver) GetListener(params *riverdriver.GetListenenerParams) riverdriver.Listener {
	return &wakeListener{Listener: d.Driver.GetListener(params), hub: d.hub}
}

// wakeExecutor and wakeExecutorTx wake db's listeners after writing
// notifications, and keep doing so in the transactions they begin.
type wakeExecutor struct {
	riverdriver.Executor
	hub *wakeHub
}

func (e wakeExecutor) NotifyMany(ctx context.Context, params *riverdriver.NotifyManyParams) error {
	return e.hub.notify(ctx, e.Executor, params)
}

func (e wakeExecutor) Begin(ctx context.Context) (riverdriver.ExecutorTx, error) {
	return beginWaking(ctx, e.Executor, e.hub)
}

type wakeExecutorTx struct {
	riverdriver.ExecutorTx
	hub *wakeHub
}

func (e wakeExecutorTx) NotifyMany(ctx context.Context, params *riverdriver.NotifyManyParams) error {
	return e.hub.notify(ctx, e.ExecutorTx, params)
}

func (e wakeExecutorTx) Begin(ctx context.Context) (riverdriver.ExecutorTx, error) {
	return beginWaking(ctx, e.ExecutorTx, e.hub)
}

func beginWaking(ctx context.Context, e riverdriver.Executor, hub *wakeHub) (riverdriver.ExecutorTx, error) {
	tx, err := e.Begin(ctx)
	if err != nil {
		return nil, err
	}
	return wakeExecutorTx{tx, hub}, nil
}

// wakeHub is the set of db's listeners, each with a one-slot wake channel.
type wakeHub struct {
	mu        sync.Mutex
	listeners map[*wakeListener]struct{}
}

func (h *wakeHub) notify(ctx context.Context, e riverdriver.Executor, params *riverdriver.NotifyManyParams) error {
	if err := e.NotifyMany(ctx, params); err != nil {
		return err
	}
	if len(params.Payload) > 0 {
		h.wake()
	}
	return nil
}

func (h *wakeHub) wake() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for l := range h.listeners {
		select {
		case l.woken <- struct{}{}:
		default: // already woken; one read covers both
		}
	}
}

func (h *wakeHub) add(l *wakeListener) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.listeners == nil {
		h.listeners = make(map[*wakeListener]struct{})
	}
	h.listeners[l] = struct{}{}
}

func (h *wakeHub) remove(l *wakeListener) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.listeners, l)
}

// wakeListener is River's SQLite listener whose wait for the next poll ends
// early when the hub wakes it.
type wakeListener struct {
	riverdriver.Listener
	hub   *wakeHub
	once  sync.Once
	woken chan struct{}
}

func (l *wakeListener) Connect(ctx context.Context) error {
	l.once.Do(func() { l.woken = make(chan struct{}, 1) })
	if err := l.Listener.Connect(ctx); err != nil {
		return err
	}
	l.hub.add(l)
	return nil
}

func (l *wakeListener) Close(ctx context.Context) error {
	l.hub.remove(l)
	return l.Listener.Close(ctx)
}

// WaitForNotification waits as River's listener does, which reads the outbox
// and then sleeps until its next poll; a wake cancels the sleep (or a read in
// flight, which then runs again) so the outbox is read now.
func (l *wakeListener) WaitForNotification(ctx context.Context) (*riverdriver.Notification, error) {
	for {
		inner, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			select {
			case <-l.woken:
				cancel()
			case <-done:
			}
		}()
		n, err := l.Listener.WaitForNotification(inner)
		close(done)
		woken := inner.Err() != nil && ctx.Err() == nil
		cancel()
		if woken && n == nil {
			continue
		}
		return n, err
	}
}
