package onnx

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/diffute/diffute/checkpoint"
	"github.com/diffute/diffute/clip"
	"github.com/diffute/diffute/sched"
	"github.com/diffute/diffute/sdgraph"
	ort "github.com/yalue/onnxruntime_go"
)

// Family is the architecture of a loaded model.
type Family int

// Model families.
const (
	SD          Family = iota + 1 // Stable Diffusion 1.x/2.x: one text encoder
	SDXL                          // SDXL base and turbo: two text encoders, pooled embeds, time ids
	SDXLRefiner                   // SDXL refiner: only text_encoder_2 (not supported for generation)
)

// String returns the family's name.
func (f Family) String() string {
	switch f {
	case SD:
		return "sd"
	case SDXL:
		return "sdxl"
	case SDXLRefiner:
		return "sdxl-refiner"
	}
	return fmt.Sprintf("Family(%d)", int(f))
}

// Default VAE scale factors, used when vae_decoder/config.json has none.
const (
	sdScaleFactor   = 0.18215
	sdxlScaleFactor = 0.13025
)

// ErrClosed is returned when a pipeline is used after it was closed.
var ErrClosed = errors.New("onnx: pipeline is closed")

// Option configures LoadPipeline.
type Option func(*pipelineOptions)

type pipelineOptions struct {
	session       sessionConfig
	library       string
	maxBatchBytes int64
	variant       string
	layout        string
	unfused       bool   // WithFusedOperators(false)
	precision     string // WithPrecision
	batch         bool   // WithRequestBatching
	batchWait     time.Duration
	batchStats    *BatchStats // where the batches are counted (an Engine's); nil: the pipeline's own
}

// WithLayout gives a single-file checkpoint the diffusers folder whose configs,
// tokenizers and scheduler it uses (diffusers' from_single_file(config=…)),
// instead of its family's embedded base layout.
func WithLayout(dir string) Option {
	return func(o *pipelineOptions) { o.layout = dir }
}

// WithVariant chooses the weights of a diffusers folder: "" (the default) takes
// the fp16 variant (*.fp16.safetensors) where a component has one, "fp32" the
// plain file.
func WithVariant(v string) Option {
	return func(o *pipelineOptions) { o.variant = v }
}

// WithDevice runs the sessions on device: "cpu" (the default) or "cuda:N".
func WithDevice(device string) Option {
	return func(o *pipelineOptions) { o.session.device = device }
}

// WithFusedOperators chooses whether built graphs use ONNX Runtime's fused
// operators, the default: MultiHeadAttention on every device
// (sdgraph.Options.FusedAttention) and, on a CUDA device, the CUDA provider's
// GroupNorm and BiasSplitGelu (sdgraph.Options.CUDAKernels). Off, every graph
// is made of standard ONNX operators: the plain graph benchmarks compare with,
// and the fallback for a provider without the fused kernels.
func WithFusedOperators(on bool) Option {
	return func(o *pipelineOptions) { o.unfused = !on }
}

// Precisions of WithPrecision.
const (
	PrecisionAuto = "auto" // float16 UNet on a CUDA device, float32 on the CPU
	PrecisionFP32 = "fp32"
	PrecisionFP16 = "fp16"
)

// Precisions lists the values WithPrecision takes.
var Precisions = []string{PrecisionAuto, PrecisionFP32, PrecisionFP16}

// WithPrecision chooses the type the UNet of a built graph computes in:
// PrecisionFP16 (sdgraph.Options.Float16, as diffusers' torch_dtype=float16),
// PrecisionFP32, or PrecisionAuto ("" too): float16 on a CUDA device, where
// tensor cores make it several times faster, float32 on the CPU, which has no
// fast float16 kernels. The text encoders and the VAE always compute in
// float32: they are a small part of a generation, and the VAE's activations
// overflow float16 on SDXL (diffusers' force_upcast). An ONNX export computes
// in the types it was exported with and takes only auto.
func WithPrecision(p string) Option {
	return func(o *pipelineOptions) { o.precision = p }
}

// graphOptions resolves the options of the graphs built for device.
func (o pipelineOptions) graphOptions() (graph sdgraph.Options, halfUNet bool, err error) {
	dev, err := parseDevice(o.session.device)
	if err != nil {
		return graph, false, err
	}
	switch strings.ToLower(o.precision) {
	case "", PrecisionAuto:
		halfUNet = dev >= 0
	case PrecisionFP16:
		halfUNet = true
	case PrecisionFP32:
	default:
		return graph, false, fmt.Errorf("onnx: precision %q: want one of %s", o.precision, strings.Join(Precisions, ", "))
	}
	graph = sdgraph.Options{FusedAttention: !o.unfused, CUDAKernels: !o.unfused && dev >= 0}
	return graph, halfUNet, nil
}

// WithCUDAOptions passes provider options to the CUDA execution provider
// (ONNX Runtime's names and values, e.g. "prefer_nhwc": "1"); nil keeps its
// defaults. Ignored on the CPU.
func WithCUDAOptions(opts map[string]string) Option {
	return func(o *pipelineOptions) { o.session.cuda = opts }
}

// WithRequestBatching lets concurrent generations of the pipeline share UNet
// batches: requests with the same size, steps, scheduler and guidance that
// wait together run as one batch within the memory budget (WithMaxBatchBytes),
// each image with its own prompt, seed and generator. A batch waits wait for
// more requests before it starts (0: it takes those already waiting), and one
// batch runs at a time. It pays where a single request leaves the device idle
// (a GPU at small sizes); off by default (docs/benchmarks.md).
func WithRequestBatching(wait time.Duration) Option {
	return func(o *pipelineOptions) { o.batch, o.batchWait = true, wait }
}

// WithThreads sets ONNX Runtime's intra- and inter-op thread counts (0: its default).
func WithThreads(intra, inter int) Option {
	return func(o *pipelineOptions) { o.session.intra, o.session.inter = intra, inter }
}

// WithMaxBatchBytes bounds the estimated memory of one UNet call; it decides how
// many images share a call (see Config.MaxBatchBytes).
func WithMaxBatchBytes(n int64) Option {
	return func(o *pipelineOptions) { o.maxBatchBytes = n }
}

// WithLibrary names the ONNX Runtime library used if the runtime is not initialised
// yet ("" resolves it with FindLibrary).
func WithLibrary(path string) Option {
	return func(o *pipelineOptions) { o.library = path }
}

// DefaultMaxBatchBytes is the UNet memory budget used when none is configured.
const DefaultMaxBatchBytes = 4 << 30

// Pipeline is a loaded model: one ONNX Runtime session per component, shared by any
// number of concurrent generations. Close releases the sessions once no generation
// uses them.
type Pipeline struct {
	dir           string
	family        Family
	te1, te2      *textEncoder // te2 nil for SD
	tok1, tok2    *clip.Tokenizer
	unet          *unetModel
	vae           *vaeDecoder
	schedCfg      sched.Config
	scaleFactor   float64
	forceZeros    bool // SDXL: an empty negative prompt means zero embeddings
	turbo         bool // trailing timestep spacing: 1 step, no guidance by default
	maxBatchBytes int64
	format        Format
	built         *builtSource // the built graphs' weights; nil for ONNX exports
	// kernelsMissing says why the built graphs fell back from the CUDA
	// provider's fused kernels to portable operators ("" if they did not).
	kernelsMissing string
	batcher        *requestBatcher // WithRequestBatching; nil: each request alone
	recipeState

	mu      sync.Mutex
	refs    int
	closing bool
	closed  bool
}

// modelIndex is the part of model_index.json the pipeline reads.
type modelIndex struct {
	ClassName                string `json:"_class_name"`
	ForceZerosForEmptyPrompt *bool  `json:"force_zeros_for_empty_prompt"`
	// TextEncoder is the ["library", "class"] pair of text_encoder; the refiner
	// writes [null, null].
	TextEncoder []*string `json:"text_encoder"`
}

func (m modelIndex) declaresTextEncoder() bool {
	return len(m.TextEncoder) == 2 && m.TextEncoder[1] != nil
}

// DetectFamily reports the family of the model folder dir from model_index.json and
// the components present, without loading any session. The UNet's inputs confirm it
// at load time.
func DetectFamily(dir string) (Family, error) {
	idx, err := readModelIndex(dir)
	if err != nil {
		return 0, err
	}
	hasTE1 := hasComponent(dir, "text_encoder") || idx.declaresTextEncoder()
	hasTE2 := hasComponent(dir, "text_encoder_2")
	// The class name does not tell a refiner: Optimum 1.10-1.21 write
	// StableDiffusionXLImg2ImgPipeline into SDXL base exports. A refiner is
	// told by its components (only the second text encoder).
	xl := strings.Contains(strings.ToLower(idx.ClassName), "xl")
	switch {
	case hasTE2 && !hasTE1:
		return SDXLRefiner, nil
	case hasTE2, xl:
		return SDXL, nil
	default:
		return SD, nil
	}
}

func readModelIndex(dir string) (modelIndex, error) {
	var idx modelIndex
	raw, err := os.ReadFile(filepath.Join(dir, "model_index.json"))
	if errors.Is(err, os.ErrNotExist) {
		if _, statErr := os.Stat(dir); statErr != nil {
			return idx, fmt.Errorf("onnx: model folder: %w", statErr)
		}
		return idx, nil // older exports lack it; the components decide
	}
	if err != nil {
		return idx, fmt.Errorf("onnx: %w", err)
	}
	if err := json.Unmarshal(raw, &idx); err != nil {
		return idx, fmt.Errorf("onnx: %s: %w", filepath.Join(dir, "model_index.json"), err)
	}
	return idx, nil
}

// hasComponent reports whether dir has the component as an ONNX model or as a
// diffusers folder (config.json).
func hasComponent(dir, component string) bool {
	return exists(filepath.Join(dir, component, "model.onnx")) || exists(filepath.Join(dir, component, "config.json"))
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// LoadPipeline loads the model folder dir (diffusers/Optimum ONNX layout:
// model_index.json, scheduler/, tokenizer[_2]/, text_encoder[_2]/model.onnx,
// unet/model.onnx, vae_decoder/model.onnx). It initialises the ONNX Runtime
// environment if nothing did yet. Errors name the missing file or input.
func LoadPipeline(path string, opts ...Option) (_ *Pipeline, err error) {
	o := pipelineOptions{maxBatchBytes: DefaultMaxBatchBytes}
	for _, opt := range opts {
		opt(&o)
	}
	if o.maxBatchBytes <= 0 {
		o.maxBatchBytes = DefaultMaxBatchBytes
	}
	if err := InitRuntime(o.library); err != nil {
		return nil, err
	}
	// A single-file checkpoint brings only weights: the configs, tokenizers and
	// scheduler come from its family's base layout (or WithLayout's folder).
	dir := path
	var single *checkpoint.SingleFile
	if st, statErr := os.Stat(path); statErr == nil && st.Mode().IsRegular() {
		if single, err = checkpoint.OpenSingleFile(path); err != nil {
			return nil, fmt.Errorf("onnx: %w", err)
		}
		defer func() {
			if err != nil && single != nil {
				single.Close() // not yet owned by a pipeline
			}
		}()
		if dir = o.layout; dir == "" {
			tmp, err := os.MkdirTemp("", "diffute-layout-")
			if err != nil {
				return nil, fmt.Errorf("onnx: %w", err)
			}
			defer os.RemoveAll(tmp) // read whole at load
			if err := checkpoint.WriteBaseLayout(single.Family, tmp); err != nil {
				return nil, fmt.Errorf("onnx: %s: %w", path, err)
			}
			dir = tmp
		}
	}
	family, err := DetectFamily(dir)
	if err != nil {
		return nil, err
	}
	if single != nil && (family == SDXL) != (single.Family == checkpoint.SDXL) {
		return nil, fmt.Errorf("onnx: %s is an %s checkpoint but its layout %s is %v", path, single.Family, dir, family)
	}
	if family == SDXLRefiner {
		return nil, fmt.Errorf("onnx: %s is an SDXL refiner (text_encoder_2 without text_encoder); refiner models are not supported", dir)
	}
	idx, err := readModelIndex(dir)
	if err != nil {
		return nil, err
	}
	p := &Pipeline{dir: path, family: family, maxBatchBytes: o.maxBatchBytes}
	if o.batch {
		stats := o.batchStats
		if stats == nil {
			stats = &BatchStats{}
		}
		p.batcher = &requestBatcher{p: p, wait: o.batchWait, stats: stats}
	}
	ok := false
	defer func() {
		if !ok {
			p.destroy()
		}
	}()
	// A folder with unet/model.onnx is an ONNX export; one with unet/config.json
	// and safetensors weights is a diffusers checkpoint whose graphs are built here.
	var src componentSource = onnxSource{dir}
	p.format = FormatONNX
	graph, halfUNet, err := o.graphOptions()
	if err != nil {
		return nil, err
	}
	if single != nil {
		b := &builtSource{configDir: dir, single: single, graph: graph, halfUNet: halfUNet}
		p.built, src, p.format = b, b, FormatSingleFile
		single = nil // the pipeline closes it
	} else if detectFormat(dir, idx) == FormatDiffusers {
		if o.variant != "" && o.variant != "fp32" && o.variant != "fp16" {
			return nil, fmt.Errorf("onnx: weights variant %q: want fp16 or fp32", o.variant)
		}
		b := &builtSource{configDir: dir, variant: o.variant, graph: graph, halfUNet: halfUNet}
		p.built, src, p.format = b, b, FormatDiffusers
	} else if prec := strings.ToLower(o.precision); prec != "" && prec != PrecisionAuto {
		return nil, fmt.Errorf("onnx: %s is an ONNX export, which computes in the types it was exported with: precision %s applies to checkpoints whose graphs Diffute builds (use auto)", dir, o.precision)
	}
	for _, rel := range requiredFiles(family, p.format) {
		if !exists(filepath.Join(dir, rel)) {
			return nil, fmt.Errorf("onnx: model folder %s: missing %s", dir, rel)
		}
	}
	if p.schedCfg, err = sched.LoadConfig(filepath.Join(dir, "scheduler", "scheduler_config.json")); err != nil {
		return nil, fmt.Errorf("onnx: %s: %w", dir, err)
	}
	p.turbo = strings.EqualFold(p.schedCfg.TimestepSpacing, "trailing")
	if p.tok1, err = clip.Load(filepath.Join(dir, "tokenizer")); err != nil {
		return nil, fmt.Errorf("onnx: %s: tokenizer: %w", dir, err)
	}
	sc := o.session
	if family == SDXL {
		if p.tok2, err = clip.Load(filepath.Join(dir, "tokenizer_2")); err != nil {
			return nil, fmt.Errorf("onnx: %s: tokenizer_2: %w", dir, err)
		}
		if p.te1, err = openTextEncoder(src, "text_encoder", sc, penultimate); err != nil {
			return nil, err
		}
		if p.te2, err = openTextEncoder(src, "text_encoder_2", sc, penultimateAndPooled); err != nil {
			return nil, err
		}
		p.forceZeros = idx.ForceZerosForEmptyPrompt == nil || *idx.ForceZerosForEmptyPrompt
		p.scaleFactor = sdxlScaleFactor
	} else {
		if p.te1, err = openTextEncoder(src, "text_encoder", sc, lastHidden); err != nil {
			return nil, err
		}
		p.scaleFactor = sdScaleFactor
	}
	if err := p.openKernelGraph(func() (err error) { p.unet, err = openUNet(src, sc, family); return err }); err != nil {
		return nil, err
	}
	if err := p.openKernelGraph(func() (err error) { p.vae, err = openVAEDecoder(src, sc); return err }); err != nil {
		return nil, err
	}
	if f, ok, err := readScalingFactor(dir); err != nil {
		return nil, err
	} else if ok {
		p.scaleFactor = f
	}
	if err := p.checkDims(); err != nil {
		return nil, err
	}
	ok = true
	return p, nil
}

// openKernelGraph opens a component whose built graph may use the CUDA
// provider's fused kernels (the UNet, the VAE). A provider build without them
// fails at session creation; the component, and every one opened after it, is
// then built again with portable operators, and the pipeline notes why.
func (p *Pipeline) openKernelGraph(open func() error) error {
	err := open()
	if err == nil || p.built == nil || !p.built.graph.CUDAKernels || !missingKernel(err) {
		return err
	}
	p.built.graph.CUDAKernels = false
	p.kernelsMissing = firstLine(err.Error())
	return open()
}

// GraphInfo says how the pipeline's built graphs compute.
type GraphInfo struct {
	Format      Format `json:"format"`
	UNetFloat16 bool   `json:"unet_fp16"`
	Fused       bool   `json:"fused_attention"`
	CUDAKernels bool   `json:"cuda_kernels"`
	// KernelsMissing is the CUDA provider's error when the fused CUDA kernels
	// were asked for and the graphs fell back to portable operators.
	KernelsMissing string `json:"cuda_kernels_missing,omitempty"`
}

// Graph reports how the pipeline computes (an ONNX export: only its format).
func (p *Pipeline) Graph() GraphInfo {
	g := GraphInfo{Format: p.format, KernelsMissing: p.kernelsMissing}
	if p.built != nil {
		g.UNetFloat16, g.Fused, g.CUDAKernels = p.built.halfUNet, p.built.graph.FusedAttention, p.built.graph.CUDAKernels
	}
	return g
}

func requiredFiles(f Family, format Format) []string {
	files := []string{
		"scheduler/scheduler_config.json",
		"tokenizer/vocab.json",
		"tokenizer/merges.txt",
	}
	if format == FormatONNX {
		files = append(files, "text_encoder/model.onnx", "unet/model.onnx", "vae_decoder/model.onnx")
	} else {
		files = append(files, "text_encoder/config.json", "unet/config.json", "vae/config.json")
	}
	if f == SDXL {
		files = append(files, "tokenizer_2/vocab.json", "tokenizer_2/merges.txt")
		if format == FormatONNX {
			files = append(files, "text_encoder_2/model.onnx")
		} else {
			files = append(files, "text_encoder_2/config.json")
		}
	}
	return files
}

// detectFormat tells an ONNX export (model.onnx files, a vae_decoder folder, an
// Onnx/ORT pipeline class) from a diffusers folder (unet/config.json beside its
// safetensors).
func detectFormat(dir string, idx modelIndex) Format {
	cls := idx.ClassName
	if exists(filepath.Join(dir, "unet", "model.onnx")) || exists(filepath.Join(dir, "vae_decoder")) ||
		strings.HasPrefix(cls, "Onnx") || strings.HasPrefix(cls, "ORT") {
		return FormatONNX
	}
	if exists(filepath.Join(dir, "unet", "config.json")) {
		return FormatDiffusers
	}
	return FormatONNX
}

// Format is how a model's weights are stored.
type Format string

// The formats a pipeline loads.
const (
	// FormatONNX: a diffusers/Optimum ONNX export (model.onnx per component).
	FormatONNX Format = "onnx"
	// FormatDiffusers: a diffusers folder of config.json + safetensors per
	// component; Diffute builds the graphs.
	FormatDiffusers Format = "diffusers"
	// FormatSingleFile: one original ("ldm") .safetensors checkpoint.
	FormatSingleFile Format = "single-file"
)

// readScalingFactor reads scaling_factor from vae_decoder/config.json (or the vae/
// folder diffusers writes).
func readScalingFactor(dir string) (float64, bool, error) {
	for _, rel := range []string{"vae_decoder/config.json", "vae/config.json"} {
		raw, err := os.ReadFile(filepath.Join(dir, rel))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, false, fmt.Errorf("onnx: %w", err)
		}
		var c struct {
			ScalingFactor *float64 `json:"scaling_factor"`
		}
		if err := json.Unmarshal(raw, &c); err != nil {
			return 0, false, fmt.Errorf("onnx: %s: %w", filepath.Join(dir, rel), err)
		}
		if c.ScalingFactor != nil && *c.ScalingFactor > 0 {
			return *c.ScalingFactor, true, nil
		}
	}
	return 0, false, nil
}

// checkDims checks that the text encoders produce what the UNet consumes, so a
// mismatched folder fails at load rather than at the first request.
func (p *Pipeline) checkDims() error {
	d := p.te1.hiddenDim
	if p.te2 != nil {
		d += p.te2.hiddenDim
	}
	if want := p.unet.hiddenDim; want > 0 && p.te1.hiddenDim > 0 && (p.te2 == nil || p.te2.hiddenDim > 0) && d != want {
		return fmt.Errorf("onnx: %s: text encoders give %d features per token, the UNet's encoder_hidden_states wants %d", p.dir, d, want)
	}
	if p.te2 != nil && p.unet.pooledDim > 0 && p.te2.pooledDim > 0 && p.unet.pooledDim != p.te2.pooledDim {
		return fmt.Errorf("onnx: %s: text_encoder_2 pools %d features, the UNet's text_embeds wants %d", p.dir, p.te2.pooledDim, p.unet.pooledDim)
	}
	return nil
}

// Family returns the model's architecture.
func (p *Pipeline) Family() Family { return p.family }

// Dir returns the folder the pipeline was loaded from.
func (p *Pipeline) Dir() string { return p.dir }

// SchedulerConfig returns the model's scheduler configuration.
func (p *Pipeline) SchedulerConfig() sched.Config { return p.schedCfg }

// acquire registers a generation; it fails once Close was called.
func (p *Pipeline) acquire() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing {
		return ErrClosed
	}
	p.refs++
	return nil
}

func (p *Pipeline) release() {
	p.mu.Lock()
	p.refs--
	done := p.closing && p.refs == 0 && !p.closed
	if done {
		p.closed = true
	}
	p.mu.Unlock()
	if done {
		p.destroy()
	}
}

// Close releases the pipeline's sessions, at once if no generation is running,
// otherwise when the last one finishes. Later generations fail with ErrClosed.
func (p *Pipeline) Close() error {
	p.mu.Lock()
	p.closing = true
	done := p.refs == 0 && !p.closed
	if done {
		p.closed = true
	}
	p.mu.Unlock()
	if done {
		p.destroy()
	}
	return nil
}

// released reports whether the sessions have been destroyed.
func (p *Pipeline) released() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

func (p *Pipeline) destroy() {
	for _, s := range []*ort.DynamicAdvancedSession{p.te1.session(), p.te2.session(), p.unet.session(), p.vae.session()} {
		if s != nil {
			_ = s.Destroy()
		}
	}
	// The sessions borrowed the built graphs' weights; free them only now.
	if p.built != nil {
		p.built.release()
	}
}

// Format is how the model's weights are stored.
func (p *Pipeline) Format() Format { return p.format }
