// An example attention module: GQA (8 query heads over 2 kv heads),
// cross-attention with Nq != Nk, causal, forward with lse and backward.
// `./fa.sh demo` verifies and prints it with fa-opt.
func.func @attention_fwd_bwd(
    %q: tensor<2x8x128x64xbf16>, %k: tensor<2x2x256x64xbf16>, %v: tensor<2x2x256x64xbf16>,
    %do: tensor<2x8x128x64xbf16>)
    -> (tensor<2x8x128x64xbf16>, tensor<2x8x128x64xbf16>, tensor<2x2x256x64xbf16>, tensor<2x2x256x64xbf16>) {
  %o0 = tensor.empty() : tensor<2x8x128x64xbf16>
  %l0 = tensor.empty() : tensor<2x8x128xf32>
  %o, %lse = attn.attention ins(%q, %k, %v : tensor<2x8x128x64xbf16>, tensor<2x2x256x64xbf16>, tensor<2x2x256x64xbf16>)
                            outs(%o0 : tensor<2x8x128x64xbf16>) lse(%l0 : tensor<2x8x128xf32>) {causal}
                            -> tensor<2x8x128x64xbf16>, tensor<2x8x128xf32>
  %dq0 = tensor.empty() : tensor<2x8x128x64xbf16>
  %dk0 = tensor.empty() : tensor<2x2x256x64xbf16>
  %dv0 = tensor.empty() : tensor<2x2x256x64xbf16>
  %dq, %dk, %dv = attn.attention_backward
      ins(%q, %k, %v, %o, %do, %lse : tensor<2x8x128x64xbf16>, tensor<2x2x256x64xbf16>, tensor<2x2x256x64xbf16>,
                                      tensor<2x8x128x64xbf16>, tensor<2x8x128x64xbf16>, tensor<2x8x128xf32>)
      outs(%dq0, %dk0, %dv0 : tensor<2x8x128x64xbf16>, tensor<2x2x256x64xbf16>, tensor<2x2x256x64xbf16>) {causal}
      -> tensor<2x8x128x64xbf16>, tensor<2x2x256x64xbf16>, tensor<2x2x256x64xbf16>
  return %o, %dq, %dk, %dv : tensor<2x8x128x64xbf16>, tensor<2x8x128x64xbf16>, tensor<2x2x256x64xbf16>, tensor<2x2x256x64xbf16>
}
