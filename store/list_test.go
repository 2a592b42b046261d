package store

import (
	"testing"
	"time"

	"github.com/diffute/diffute"
)

func newListJob(org string, id int64, at time.Time) *diffute.Job {
	seed := int64(7)
	return &diffute.Job{
		ID: id, Org: org, Project: "p", Name: "n", Model: "m", Status: diffute.StatusQueued, CreatedAt: at,
		Prompts: []diffute.JobPrompt{{PromptRequest: diffute.PromptRequest{Name: "a", Prompt: "x", NumImages: 1, Width: 64, Height: 64, Seed: &seed}}},
	}
}

func (ds suite) TestListJobsPagesNewestFirstWithinTenant(t *testing.T) {
	ctx := t.Context()
	db := ds.open(t)
	st := db.Store()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// Two jobs share a creation time so that the id tie-break is exercised.
	for i, at := range []time.Time{base, base.Add(time.Second), base.Add(time.Second), base.Add(2 * time.Second)} {
		if err := st.CreateJob(ctx, newListJob("acme", int64(1000+i), at)); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.CreateJob(ctx, newListJob("globex", 2000, base.Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	var got []int64
	var before int64
	for pages := 1; ; pages++ {
		page, next, err := st.ListJobs(ctx, "acme", "p", 3, before)
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range page {
			if j.Org != "acme" || len(j.Prompts) != 1 {
				t.Fatalf("job %+v from another tenant or without prompts", j)
			}
			got = append(got, j.ID)
		}
		if next == 0 {
			if pages != 2 {
				t.Errorf("%d pages of 3 for 4 jobs, want 2", pages)
			}
			break
		}
		if next != page[len(page)-1].ID {
			t.Fatalf("next = %d, want the last job of the page %d", next, page[len(page)-1].ID)
		}
		before = next
	}
	want := []int64{1003, 1002, 1001, 1000}
	if len(got) != len(want) {
		t.Fatalf("ids = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("ids = %v, want %v", got, want)
		}
	}
	if _, _, err := st.ListJobs(ctx, "acme", "p", 3, 2000); diffute.ErrorCode(err) != diffute.ENOTFOUND {
		t.Errorf("cursor from another tenant: %v, want ENOTFOUND", err)
	}

	stats, err := st.QueueStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(stats) != 1 || stats[0].Depth != 5 || stats[0].OldestDue.IsZero() {
		t.Errorf("queue stats = %+v, want one queue with 5 jobs due", stats)
	}
	counts, err := st.AttemptCounts(ctx)
	if err != nil || counts["success"] != 0 || len(counts) != 3 {
		t.Errorf("attempt counts = %v, %v", counts, err)
	}
}

// BenchmarkListJobs measures one page of 20 jobs (two prompts each) out of 200: what
// the console's job list costs the database per refresh.
func BenchmarkListJobs(b *testing.B) {
	ctx := b.Context()
	db := openSQLiteTest(b)
	st := db.Store()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 200 {
		j := newListJob("acme", int64(10000+i), base.Add(time.Duration(i)*time.Second))
		j.Prompts = append(j.Prompts, j.Prompts[0])
		j.Prompts[1].Name = "b"
		if err := st.CreateJob(ctx, j); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		page, _, err := st.ListJobs(ctx, "acme", "p", 20, 0)
		if err != nil || len(page) != 20 {
			b.Fatalf("%d jobs, %v", len(page), err)
		}
	}
}

// BenchmarkJobRead measures the read an events stream makes per poll.
func BenchmarkJobRead(b *testing.B) {
	ctx := b.Context()
	db := openSQLiteTest(b)
	st := db.Store()
	if err := st.CreateJob(ctx, newListJob("acme", 4242, time.Now())); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := st.Job(ctx, "acme", "p", 4242); err != nil {
			b.Fatal(err)
		}
	}
}

// TestListJobsFullPageAtTheMaximum is the regression test of limit=100 never
// returning next_before: the store clamped the caller's limit+1 to 100, so at
// the documented maximum no page ever said that another followed.
func (ds suite) TestListJobsFullPageAtTheMaximum(t *testing.T) {
	ctx := t.Context()
	st := ds.open(t).Store()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range MaxListJobs + 1 {
		if err := st.CreateJob(ctx, newListJob("acme", int64(1000+i), base.Add(time.Duration(i)*time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	page, next, err := st.ListJobs(ctx, "acme", "p", MaxListJobs, 0)
	if err != nil || len(page) != MaxListJobs || next != page[len(page)-1].ID {
		t.Fatalf("first page: %d jobs, next %d, %v; want %d jobs and a cursor", len(page), next, err, MaxListJobs)
	}
	last, next, err := st.ListJobs(ctx, "acme", "p", MaxListJobs, next)
	if err != nil || len(last) != 1 || last[0].ID != 1000 || next != 0 {
		t.Fatalf("second page: %d jobs, next %d, %v; want job 1000 alone", len(last), next, err)
	}
}
