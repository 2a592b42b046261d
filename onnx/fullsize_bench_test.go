package onnx

import (
	"bufio"
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/diffute/diffute"
)

// BenchmarkFullSize measures a full-size checkpoint written by
// `diffute models make-random --family F --out DIR` (named by
// DIFFUTE_BENCH_MODEL; nothing runs without it): the time to read its weight
// files, the load time and peak RSS of the pipeline (against the float32 bytes
// of the parameters loaded), and seconds per UNet step at the native size with
// guidance (batch 2, DIFFUTE_BENCH_STEPS steps) and the peak RSS of that run. DIFFUTE_BENCH_COLD=1 empties
// the page cache before the read and before the load. Run one model per
// process, since peak RSS is the process's:
//
//	DIFFUTE_BENCH_MODEL=/tmp/sd15 go test -run '^$' -bench FullSize -benchtime 1x -timeout 30m ./onnx
func BenchmarkFullSize(b *testing.B) {
	dir := os.Getenv("DIFFUTE_BENCH_MODEL")
	if dir == "" {
		b.Skip("set DIFFUTE_BENCH_MODEL to a folder written by diffute models make-random")
	}
	requireORT(b)
	steps, _ := strconv.Atoi(os.Getenv("DIFFUTE_BENCH_STEPS"))
	cold := os.Getenv("DIFFUTE_BENCH_COLD") == "1"
	for b.Loop() {
		if cold {
			dropCaches(b)
		}
		read := readAll(b, dir)
		if cold {
			dropCaches(b)
		}
		resetPeakRSS()
		base := rss(b, "VmRSS")
		start := time.Now()
		p, err := LoadPipeline(dir)
		if err != nil {
			b.Fatal(err)
		}
		load := time.Since(start)
		peak := rss(b, "VmHWM")
		var fp32 int64
		for _, c := range p.built.comps {
			fp32 += c.graph.ParamBytes()
		}
		b.ReportMetric(read.Seconds(), "read-s")
		b.ReportMetric(load.Seconds(), "load-s")
		b.ReportMetric(load.Seconds()/read.Seconds(), "load/read")
		b.ReportMetric(float64(fp32)/1e9, "fp32-params-GB")
		b.ReportMetric(float64(peak-base)/1e9, "peak-rss-GB")
		b.ReportMetric(float64(peak-base)/float64(fp32), "peak-rss/fp32")
		if steps > 0 {
			side := 512
			if p.family == SDXL {
				side = 1024
			}
			req := diffute.GenerateRequest{Prompt: "a lighthouse at dusk", NumImages: 1, Width: side, Height: side, Steps: steps, Seed: 1}
			var st runStats
			resetPeakRSS()
			start := time.Now()
			if _, err := p.run(context.Background(), req, nil, &st); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(time.Since(start).Seconds(), "image-s")
			b.ReportMetric(float64(rss(b, "VmHWM")-base)/1e9, "run-peak-rss-GB")
			b.ReportMetric(st.unetRun.Seconds()/float64(steps), "unet-s/step")
		}
		p.Close()
	}
}

// readAll reads every safetensors file under dir once and returns the time.
func readAll(b *testing.B, dir string) time.Duration {
	start := time.Now()
	err := filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() || !strings.HasSuffix(path, ".safetensors") {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(io.Discard, f)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// dropCaches empties the page cache (root only), so reads and loads come from disk.
func dropCaches(b *testing.B) {
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("1"), 0); err != nil {
		b.Fatalf("DIFFUTE_BENCH_COLD=1 needs root to drop the page cache: %v", err)
	}
}

// resetPeakRSS restarts VmHWM at the current RSS (Linux clear_refs 5).
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

func rss(b *testing.B, field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	b.Fatalf("/proc/self/status has no %s", field)
	return 0
}
