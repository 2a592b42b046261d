package sqlite

import (
	"context"
	"io/fs"
	"regexp"
	"strings"
	"testing"

	"github.com/diffute/diffute/pgtest"
	"github.com/diffute/diffute/storetest"
)

func openPostgresTest(t testing.TB) *DB {
	t.Helper()
	url := pgtest.URL(t)
	db, err := OpenPostgres(context.Background(), url)
	if err != nil {
		t.Fatalf("OpenPostgres: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return db
}

func TestStorePostgres(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) *storetest.Harness {
		db := openPostgresTest(t)
		return &storetest.Harness{
			Store: db.Store(), Keys: db.Store(),
			StartJob:   db.Store().StartJob,
			QueueState: db.riverState,
		}
	})
}

// TestMigrationsHaveBothDialects keeps the two migration folders in step: a new
// SQLite migration without its PostgreSQL twin would leave scale-out deployments
// without the table the new code reads.
func TestMigrationsHaveBothDialects(t *testing.T) {
	t.Parallel()
	names := map[Dialect]map[string]bool{}
	for d, dir := range migrationDirs {
		migs, err := ownMigrations(dir)
		if err != nil {
			t.Fatal(err)
		}
		names[d] = map[string]bool{}
		for _, m := range migs {
			num, _, _ := strings.Cut(m.name, "_")
			names[d][num] = true
		}
	}
	for num := range names[SQLite] {
		if !names[Postgres][num] {
			t.Errorf("migrations/%s_*.sql has no twin in migrations_postgres/", num)
		}
	}
	for num := range names[Postgres] {
		if !names[SQLite][num] {
			t.Errorf("migrations_postgres/%s_*.sql has no twin in migrations/", num)
		}
	}
	if _, err := fs.ReadDir(migrationFS, "migrations_postgres"); err != nil {
		t.Fatal(err)
	}
}

func TestInferenceQueueNames(t *testing.T) {
	t.Parallel()
	seen := map[string]string{}
	for _, m := range []string{"diffute/tiny-sd", "diffute/tiny_sd", "Diffute/Tiny-SD",
		"stabilityai/stable-diffusion-xl-base-1.0", strings.Repeat("very-long-org/", 10) + "model", "///"} {
		q := InferenceQueue(m)
		if !queueName.MatchString(q) || len(q) > 64 {
			t.Errorf("InferenceQueue(%q) = %q: not a valid River queue name", m, q)
		}
		if other, ok := seen[q]; ok {
			t.Errorf("InferenceQueue(%q) = InferenceQueue(%q) = %q", m, other, q)
		}
		seen[q] = m
	}
	if q := InferenceQueue("diffute/tiny-sd"); !strings.HasPrefix(q, "inference_diffute-tiny-sd_") {
		t.Errorf("InferenceQueue(diffute/tiny-sd) = %q, want a readable prefix", q)
	}
}

// queueName is River's rule for queue names (river.validateQueueName).
var queueName = regexp.MustCompile(`^(?:[a-z0-9])+(?:[_|\-]?[a-z0-9]+)*$`)

// onPostgres is the name of TestOnPostgres; openTest opens PostgreSQL under it.
const onPostgres = "TestOnPostgres"

// TestOnPostgres runs the store's dialect-independent tests again on PostgreSQL:
// the tenancy suite, webhook events and secrets, group commit, listing and
// retention. Each opens its database through openTest, which picks PostgreSQL
// under this test.
func TestOnPostgres(t *testing.T) {
	t.Parallel()
	for name, test := range map[string]func(*testing.T){
		"Tenancy":                              TestTenancy,
		"SecretsEncryptedAtRest":               TestSecretsEncryptedAtRest,
		"RetentionQueries":                     TestRetentionQueries,
		"WorkerPathWritesImagesAndDelivery":    TestWorkerPathWritesImagesAndDelivery,
		"FinishJobAfterCancelConflicts":        TestFinishJobAfterCancelConflicts,
		"WebhookSecretsCreateOnceAndRotate":    TestWebhookSecretsCreateOnceAndRotate,
		"EventMessagesWrittenOnce":             TestEventMessagesWrittenOnce,
		"Redeliver":                            TestRedeliver,
		"WebhookSecretsEncryptedAtRest":        TestWebhookSecretsEncryptedAtRest,
		"CreateJobConcurrentBatches":           TestCreateJobConcurrentBatches,
		"ListJobsPagesNewestFirstWithinTenant": TestListJobsPagesNewestFirstWithinTenant,
	} {
		t.Run(name, test)
	}
}
