package sdgraph

import "fmt"

// Build builds the graph of a diffusers component from its config.json:
// "text_encoder" and "text_encoder_2" (CLIP), "unet", "vae" (its decoder;
// "vae_decoder" is accepted too) and "vae_encoder", computed as o says.
func Build(component string, config []byte, o Options) (*Graph, error) {
	switch component {
	case "text_encoder", "text_encoder_2":
		c, err := ParseTextConfig(config)
		if err != nil {
			return nil, err
		}
		return TextEncoder(c, o)
	case "unet":
		c, err := ParseUNetConfig(config)
		if err != nil {
			return nil, err
		}
		return UNet(c, o)
	case "vae", "vae_decoder":
		c, err := ParseVAEConfig(config)
		if err != nil {
			return nil, err
		}
		return VAEDecoder(c, o)
	case "vae_encoder":
		c, err := ParseVAEConfig(config)
		if err != nil {
			return nil, err
		}
		return VAEEncoder(c, o)
	}
	return nil, fmt.Errorf("no graph builder for component %q", component)
}
