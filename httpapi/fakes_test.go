package httpapi_test

import (
	"context"
	"sync"
	"time"

	"github.com/diffute/diffute"
)

// fakeStore is a diffute.Store whose behaviour each test sets through function fields.
type fakeStore struct {
	CreateJobFn  func(ctx context.Context, job *diffute.Job) error
	JobFn        func(ctx context.Context, org, project string, id int64) (*diffute.Job, error)
	CancelJobFn  func(ctx context.Context, org, project string, id int64) (*diffute.Job, error)
	ListJobsFn   func(ctx context.Context, org, project string, limit int, before int64) ([]*diffute.Job, int64, error)
	DeliveriesFn func(ctx context.Context, org, project string, jobID int64) ([]diffute.DeliveryAttempt, error)
	PingFn       func(ctx context.Context) error
}

var _ diffute.Store = (*fakeStore)(nil)

func (f *fakeStore) CreateJob(ctx context.Context, job *diffute.Job) error {
	return f.CreateJobFn(ctx, job)
}
func (f *fakeStore) Job(ctx context.Context, org, project string, id int64) (*diffute.Job, error) {
	return f.JobFn(ctx, org, project, id)
}
func (f *fakeStore) CancelJob(ctx context.Context, org, project string, id int64) (*diffute.Job, error) {
	return f.CancelJobFn(ctx, org, project, id)
}
func (f *fakeStore) ListJobs(ctx context.Context, org, project string, limit int, before int64) ([]*diffute.Job, int64, error) {
	return f.ListJobsFn(ctx, org, project, limit, before)
}
func (f *fakeStore) Deliveries(ctx context.Context, org, project string, jobID int64) ([]diffute.DeliveryAttempt, error) {
	return f.DeliveriesFn(ctx, org, project, jobID)
}

// fakeTenancy is a diffute.TenancyStore whose behaviour each test sets through
// function fields.
type fakeTenancy struct {
	SubmitJobFn func(ctx context.Context, job *diffute.Job, sub diffute.Submission) (int64, bool, error)
	UsageFn     func(ctx context.Context, org, project string, from, to time.Time) ([]diffute.UsageDay, error)
}

var _ diffute.TenancyStore = (*fakeTenancy)(nil)

func (f *fakeTenancy) SubmitJob(ctx context.Context, job *diffute.Job, sub diffute.Submission) (int64, bool, error) {
	return f.SubmitJobFn(ctx, job, sub)
}
func (f *fakeTenancy) Usage(ctx context.Context, org, project string, from, to time.Time) ([]diffute.UsageDay, error) {
	return f.UsageFn(ctx, org, project, from, to)
}
func (f *fakeStore) Ping(ctx context.Context) error { return f.PingFn(ctx) }

// fakeKeys is a diffute.KeyStore whose behaviour each test sets through function fields.
type fakeKeys struct {
	CreateAPIKeyFn func(ctx context.Context, key *diffute.APIKey, hash []byte) error
	APIKeyByHashFn func(ctx context.Context, hash []byte) (*diffute.APIKey, error)
	ListAPIKeysFn  func(ctx context.Context, org string) ([]*diffute.APIKey, error)
	RevokeAPIKeyFn func(ctx context.Context, id int64) error
}

var _ diffute.KeyStore = (*fakeKeys)(nil)

func (f *fakeKeys) CreateAPIKey(ctx context.Context, key *diffute.APIKey, hash []byte) error {
	return f.CreateAPIKeyFn(ctx, key, hash)
}
func (f *fakeKeys) APIKeyByHash(ctx context.Context, hash []byte) (*diffute.APIKey, error) {
	return f.APIKeyByHashFn(ctx, hash)
}
func (f *fakeKeys) ListAPIKeys(ctx context.Context, org string) ([]*diffute.APIKey, error) {
	return f.ListAPIKeysFn(ctx, org)
}
func (f *fakeKeys) RevokeAPIKey(ctx context.Context, id int64) error {
	return f.RevokeAPIKeyFn(ctx, id)
}

// memory backs the fakes with maps, scoped by tenant as the real stores are.
type memory struct {
	mu         sync.Mutex
	jobs       map[int64]*diffute.Job
	deliveries map[int64][]diffute.DeliveryAttempt
	keys       map[string]*diffute.APIKey // by string(hash)
	creates    int
}

func newMemory() *memory {
	return &memory{
		jobs:       map[int64]*diffute.Job{},
		deliveries: map[int64][]diffute.DeliveryAttempt{},
		keys:       map[string]*diffute.APIKey{},
	}
}

func (m *memory) store() *fakeStore {
	return &fakeStore{
		CreateJobFn: func(_ context.Context, job *diffute.Job) error {
			m.mu.Lock()
			defer m.mu.Unlock()
			m.creates++
			if _, ok := m.jobs[job.ID]; ok {
				return diffute.Errorf(diffute.ECONFLICT, "job exists")
			}
			c := *job
			m.jobs[job.ID] = &c
			return nil
		},
		JobFn: func(_ context.Context, org, project string, id int64) (*diffute.Job, error) {
			m.mu.Lock()
			defer m.mu.Unlock()
			j, ok := m.jobs[id]
			if !ok || j.Org != org || j.Project != project {
				return nil, diffute.Errorf(diffute.ENOTFOUND, "no such job")
			}
			c := *j
			return &c, nil
		},
		CancelJobFn: func(_ context.Context, org, project string, id int64) (*diffute.Job, error) {
			m.mu.Lock()
			defer m.mu.Unlock()
			j, ok := m.jobs[id]
			if !ok || j.Org != org || j.Project != project {
				return nil, diffute.Errorf(diffute.ENOTFOUND, "no such job")
			}
			if j.Status.Terminal() {
				return nil, diffute.Errorf(diffute.ECONFLICT, "job is already %s", j.Status)
			}
			j.Status = diffute.StatusCanceled
			c := *j
			return &c, nil
		},
		ListJobsFn: func(context.Context, string, string, int, int64) ([]*diffute.Job, int64, error) {
			return nil, 0, nil
		},
		DeliveriesFn: func(_ context.Context, org, project string, id int64) ([]diffute.DeliveryAttempt, error) {
			m.mu.Lock()
			defer m.mu.Unlock()
			if j, ok := m.jobs[id]; !ok || j.Org != org || j.Project != project {
				return nil, nil
			}
			return append([]diffute.DeliveryAttempt(nil), m.deliveries[id]...), nil
		},
		PingFn: func(context.Context) error { return nil },
	}
}

// tenancy submits through store's CreateJob: no idempotency, no quotas.
func (m *memory) tenancy(store *fakeStore) *fakeTenancy {
	return &fakeTenancy{
		SubmitJobFn: func(ctx context.Context, job *diffute.Job, _ diffute.Submission) (int64, bool, error) {
			return job.ID, false, store.CreateJob(ctx, job)
		},
		UsageFn: func(context.Context, string, string, time.Time, time.Time) ([]diffute.UsageDay, error) {
			return nil, nil
		},
	}
}

func (m *memory) keyStore() *fakeKeys {
	return &fakeKeys{
		APIKeyByHashFn: func(_ context.Context, hash []byte) (*diffute.APIKey, error) {
			m.mu.Lock()
			defer m.mu.Unlock()
			k, ok := m.keys[string(hash)]
			if !ok {
				return nil, diffute.Errorf(diffute.EUNAUTHORIZED, "no such key")
			}
			c := *k
			return &c, nil
		},
	}
}

// addKey registers a new key for org/project and returns its secret.
func (m *memory) addKey(key diffute.APIKey) string {
	secret, hash := diffute.NewAPIKeySecret()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.keys[string(hash)] = &key
	return secret
}

func (m *memory) job(id int64) *diffute.Job {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, ok := m.jobs[id]
	if !ok {
		return nil
	}
	c := *j
	return &c
}

func (m *memory) putJob(j *diffute.Job) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.jobs[j.ID] = j
}

func (m *memory) createCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.creates
}

// revokeAll revokes every key.
func (m *memory) revokeAll() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range m.keys {
		k.RevokedAt = time.Now()
	}
}
