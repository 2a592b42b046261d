// Package hub downloads the files of a Stable Diffusion pipeline, in the
// diffusers layout (safetensors weights) or as an ONNX export, from the
// Hugging Face Hub into the standard Hugging Face cache, and finds them there.
//
// It owns three things:
//
//   - The cache layout shared with Python's huggingface_hub, so a model pulled
//     by either is reused by the other: under the cache root,
//     models--{org}--{name}/blobs/{etag} holds content, snapshots/{commit}/{path}
//     are relative symlinks into blobs, and refs/{revision} holds the commit a
//     branch or tag resolved to. Partial downloads live in blobs/{etag}.incomplete
//     and are resumed with a Range request; .locks/ holds the same flock(2) lock
//     files Python's filelock uses, so concurrent downloaders do not collide.
//   - The Hub protocol subset needed for that: the revision API for the file
//     listing and commit, HEAD on resolve URLs for per-file metadata (commit,
//     etag, size, CDN location), and GET to fetch content, never sending the
//     token to a host other than the endpoint's.
//   - The choice of files: only what the pipeline loads. For the diffusers
//     layout (the default when a revision has it): model_index.json, the
//     scheduler config, the tokenizers, and per component (unet, vae,
//     text_encoder[_2]) its config.json and one weights variant, fp16 when the
//     revision has it (checkpoint.ChooseWeights, the rule the loader uses),
//     with a sharded index's shards; never PyTorch pickles, the other variant,
//     the safety checker or ONNX files. For the ONNX layout (FormatONNX, or a
//     revision without safetensors): the diffusers/Optimum ONNX files (see
//     NeededFile), never the weights that share the repository.
//
// Configuration comes from the same environment variables Python reads
// (HF_HUB_CACHE, HF_HOME, XDG_CACHE_HOME, HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE),
// through FromEnv. Package hubtest provides a fake Hub for tests.
package hub
