package tinymodel

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	og "github.com/diffute/diffute/onnxgraph"
)

// Names of the tiny models.
const (
	NameSD        = "diffute/tiny-sd"
	NameSDXL      = "diffute/tiny-sdxl"
	NameSDXLTurbo = "diffute/tiny-sdxl-turbo"
)

// Widths of the tiny models: the first text encoder's hidden size (D1), the
// second's (D2, SDXL) and its pooled projection (P, SDXL's text_embeds).
const (
	TextHidden   = 32
	TextHidden2  = 64
	PooledHidden = 48
)

// marker is the line of README.md that says a folder is a tiny model written by
// this package, which is what lets Write replace it.
const marker = "<!-- written by diffute's tinymodel package -->"

// Names returns the tiny model names, in a stable order.
func Names() []string { return []string{NameSD, NameSDXL, NameSDXLTurbo} }

// IsTiny reports whether name is one of the tiny models.
func IsTiny(name string) bool { return slices.Contains(Names(), name) }

// WriteOptions selects variants of a tiny model that real exports also come in,
// so the engine's handling of each can be tested.
type WriteOptions struct {
	// FP16 makes every float input and output float16 (the graphs cast at their
	// edges), as in fp16 exports. A float timestep then becomes float16 [1]:
	// onnxruntime_go cannot build a float16 rank-0 value.
	FP16 bool
	// TimestepFloatScalar gives tiny-sd's UNet a float rank-0 timestep, as newer
	// SD 1.x exports have, instead of int64 [1]. SDXL models always have it.
	TimestepFloatScalar bool
	// ONNX writes the model in the diffusers/Optimum ONNX layout (a hand-made
	// small graph per component, model.onnx files) instead of the default
	// diffusers layout (config.json + safetensors, real block structure), so the
	// engine's ONNX loading path stays tested.
	ONNX bool
}

// Write writes the model folder for name into dir, replacing a tiny model folder
// already there. The folder is assembled beside dir in dir+".tmp-*" and renamed
// into place, so a crash never leaves a half folder that looks complete (a stale
// .tmp-* folder may remain).
func Write(dir, name string) error { return WriteWith(dir, name, WriteOptions{}) }

// WriteWith is Write with variant options.
func WriteWith(dir, name string, opts WriteOptions) error {
	tmp, err := stage(dir, name, opts)
	if err != nil {
		return err
	}
	if err := replace(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	return nil
}

// Ensure returns dir after writing the model name there if dir/model_index.json
// is absent. Concurrent calls for the same dir are safe: one folder wins and the
// others find it.
func Ensure(dir, name string) (string, error) {
	index := filepath.Join(dir, "model_index.json")
	if _, err := os.Stat(index); err == nil {
		return dir, nil
	}
	tmp, err := stage(dir, name, WriteOptions{})
	if err != nil {
		return "", err
	}
	// rename(2) replaces a missing or empty dir; anything else stays.
	if err := os.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		if _, statErr := os.Stat(index); statErr == nil {
			return dir, nil // another writer got there first
		}
		return "", fmt.Errorf("tinymodel: %s exists without model_index.json: %w", dir, err)
	}
	return dir, nil
}

// stage writes the model into a fresh temporary folder beside dir.
func stage(dir, name string, opts WriteOptions) (string, error) {
	files, err := Files(name, opts)
	if err != nil {
		return "", err
	}
	dir = filepath.Clean(dir)
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", fmt.Errorf("tinymodel: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), filepath.Base(dir)+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("tinymodel: %w", err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("tinymodel: %w", err)
	}
	for _, rel := range sortedKeys(files) {
		if err := writeSynced(filepath.Join(tmp, filepath.FromSlash(rel)), files[rel]); err != nil {
			os.RemoveAll(tmp)
			return "", err
		}
	}
	return tmp, nil
}

// replace moves the staged folder tmp to dir. An existing dir must be empty or a
// folder this package wrote; it is moved aside first and removed after.
func replace(tmp, dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.Rename(tmp, dir); err != nil {
			return fmt.Errorf("tinymodel: %w", err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("tinymodel: %w", err)
	}
	if len(entries) > 0 {
		readme, err := os.ReadFile(filepath.Join(dir, "README.md"))
		if err != nil || !strings.Contains(string(readme), marker) {
			return fmt.Errorf("tinymodel: %s exists and is not a tiny model folder; not replacing it", dir)
		}
	}
	old := tmp + ".old"
	if err := os.Rename(dir, old); err != nil {
		return fmt.Errorf("tinymodel: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if restoreErr := os.Rename(old, dir); restoreErr != nil {
			return fmt.Errorf("tinymodel: %w (and restoring the old folder from %s: %w)", err, old, restoreErr)
		}
		return fmt.Errorf("tinymodel: %w", err)
	}
	if err := os.RemoveAll(old); err != nil {
		return fmt.Errorf("tinymodel: removing the replaced folder: %w", err)
	}
	return nil
}

func writeSynced(p string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("tinymodel: %w", err)
	}
	f, err := os.Create(p)
	if err != nil {
		return fmt.Errorf("tinymodel: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("tinymodel: write %s: %w", p, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("tinymodel: sync %s: %w", p, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("tinymodel: %w", err)
	}
	return nil
}

func sortedKeys(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Files returns the contents of the model folder for name, keyed by slash-separated
// path relative to the folder. The same name and options always give the same bytes.
func Files(name string, opts WriteOptions) (map[string][]byte, error) {
	if !IsTiny(name) {
		return nil, fmt.Errorf("tinymodel: unknown model %q (have %s)", name, strings.Join(Names(), ", "))
	}
	if !opts.ONNX {
		return diffusersFiles(name, opts)
	}
	xl := name != NameSD
	vocab := buildVocabulary()
	files := map[string][]byte{}
	add := func(dir string, m map[string][]byte) {
		for k, v := range m {
			files[path.Join(dir, k)] = v
		}
	}

	tok, err := vocab.tokenizerFiles(endOfText)
	if err != nil {
		return nil, err
	}
	add("tokenizer", tok)

	fp16 := opts.FP16
	te1 := textEncoder{ids: og.Int32, vocab: len(vocab.tokens), hidden: TextHidden, layers: 12, allHidden: xl}
	if err := addModel(files, "text_encoder", buildTextEncoder(newBuilder(name, "text_encoder", fp16), te1), ""); err != nil {
		return nil, err
	}
	u := unet{timestep: timestepInt64, text: TextHidden}
	unetData := "model.onnx_data"
	if xl {
		tok2, err := vocab.tokenizerFiles("!")
		if err != nil {
			return nil, err
		}
		add("tokenizer_2", tok2)
		te2 := textEncoder{ids: og.Int64, vocab: len(vocab.tokens), hidden: TextHidden2, layers: 32, projection: PooledHidden, allHidden: true}
		if err := addModel(files, "text_encoder_2", buildTextEncoder(newBuilder(name, "text_encoder_2", fp16), te2), ""); err != nil {
			return nil, err
		}
		u = unet{timestep: timestepScalar, text: TextHidden + TextHidden2, pooled: PooledHidden}
		unetData = "weights.pb"
	} else if opts.TimestepFloatScalar {
		u.timestep = timestepScalar
	}
	if fp16 && u.timestep == timestepScalar {
		u.timestep = timestepFloatOne
	}
	if err := addModel(files, "unet", buildUNet(newBuilder(name, "unet", fp16), u), unetData); err != nil {
		return nil, err
	}
	if err := addModel(files, "vae_decoder", buildVAEDecoder(newBuilder(name, "vae_decoder", fp16)), ""); err != nil {
		return nil, err
	}
	if err := addModel(files, "vae_encoder", buildVAEEncoder(newBuilder(name, "vae_encoder", fp16)), ""); err != nil {
		return nil, err
	}

	meta, err := metadataFiles(name, len(vocab.tokens), opts)
	if err != nil {
		return nil, err
	}
	add("", meta)
	return files, nil
}

// addModel marshals m into component/model.onnx, with its larger weights in
// component/<dataFile> when dataFile is set.
func addModel(files map[string][]byte, component string, m *og.Model, dataFile string) error {
	m.ProducerName = "diffute-tinymodel"
	m.DocString = "Tiny random-weight test model written by Diffute; it makes noise, not pictures."
	if dataFile == "" {
		b, err := m.Marshal()
		if err != nil {
			return fmt.Errorf("tinymodel: %s: %w", component, err)
		}
		files[component+"/model.onnx"] = b
		return nil
	}
	b, data, err := m.MarshalExternal(dataFile)
	if err != nil {
		return fmt.Errorf("tinymodel: %s: %w", component, err)
	}
	files[component+"/model.onnx"] = b
	files[component+"/"+dataFile] = data
	return nil
}
