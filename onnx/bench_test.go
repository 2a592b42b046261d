package onnx

import (
	"context"
	"fmt"
	"testing"

	"github.com/diffute/diffute"
)

// BenchmarkStepOverhead measures the pipeline's own work per denoising step (input
// scaling, guidance, scheduler step, noise, bookkeeping), that is, the step loop's
// time minus the time inside the UNet session's Run, at 1024×1024 on tiny-sdxl with
// guidance (a batch of 2 rows). Reported per step: overhead-ms/step (split into
// prepare-ms/step: scaling the latents into both halves of the batch;
// guidance-ms/step; sched-ms/step: the scheduler's Step, noise included), and the heap
// allocations of the loop (loop-allocs/step, loop-B/step), which must not grow
// with the step count.
func BenchmarkStepOverhead(b *testing.B) {
	dir := tinyModel(b, tinySDXL)
	// One intra-op thread: ORT's pool threads spin after each Run, and on a small
	// machine they compete with the loop for the cores; what is measured here is
	// the pipeline's work, not that contention.
	p, err := LoadPipeline(dir, WithThreads(1, 1))
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	for _, c := range []struct {
		scheduler string
		steps     int
		unfused   bool
	}{{"euler", 10, false}, {"euler", 40, false}, {"euler_a", 40, false}, {"euler", 40, true}} {
		name := fmt.Sprintf("%s/steps=%d", c.scheduler, c.steps)
		if c.unfused {
			name += "/unfused"
		}
		b.Run(name, func(b *testing.B) {
			req := diffute.GenerateRequest{
				Prompt: "a lighthouse at dusk", NumImages: 1, Width: 1024, Height: 1024,
				Steps: c.steps, Seed: 1, Scheduler: c.scheduler, GuidanceScale: ptr(5.0),
			}
			var total runStats
			b.ReportAllocs()
			for b.Loop() {
				st := runStats{unfused: c.unfused}
				if _, err := p.run(context.Background(), req, nil, &st); err != nil {
					b.Fatal(err)
				}
				total.steps += st.steps
				total.denoise += st.denoise
				total.unetRun += st.unetRun
				total.loopAllocs += st.loopAllocs
				total.loopBytes += st.loopBytes
				total.prepare += st.prepare
				total.guidance += st.guidance
				total.schedStep += st.schedStep
			}
			n := float64(total.steps)
			b.ReportMetric(float64((total.denoise-total.unetRun).Nanoseconds())/1e6/n, "overhead-ms/step")
			b.ReportMetric(float64(total.unetRun.Nanoseconds())/1e6/n, "unet-ms/step")
			b.ReportMetric(float64(total.prepare.Nanoseconds())/1e6/n, "prepare-ms/step")
			b.ReportMetric(float64(total.guidance.Nanoseconds())/1e6/n, "guidance-ms/step")
			b.ReportMetric(float64(total.schedStep.Nanoseconds())/1e6/n, "sched-ms/step")
			b.ReportMetric(float64(total.loopAllocs)/n, "loop-allocs/step")
			b.ReportMetric(float64(total.loopBytes)/n, "loop-B/step")
		})
	}
}

// BenchmarkGenerateTinySD512 is one whole 512×512 generation of 20 steps (one
// image, default guidance) on tiny-sd: text encoding, the loop and VAE decoding.
// The onnx case is the hand-made ONNX-layout tiny model, diffusers the served
// one: the real block structure at tiny widths, built from its config.
func BenchmarkGenerateTinySD512(b *testing.B) {
	for _, layout := range []string{"onnx", "diffusers"} {
		b.Run(layout, func(b *testing.B) {
			name := tinySD
			if layout == "diffusers" {
				name += "+diffusers"
			}
			p := sharedPipeline(b, name)
			req := diffute.GenerateRequest{Prompt: "a lighthouse at dusk", NumImages: 1, Width: 512, Height: 512, Steps: 20, Seed: 1}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.Generate(context.Background(), req, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
