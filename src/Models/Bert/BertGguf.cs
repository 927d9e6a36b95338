namespace EdgeSlm.Models.Bert;

/// <summary>llama.cpp's names for a BERT model in GGUF (<c>LLM_ARCH_BERT</c>): metadata keys and tensor names.</summary>
public static class BertGguf
{
    public const string Architecture = "bert";

    public const string ArchitectureKey = "general.architecture";
    public const string NameKey = "general.name";
    public const string FileTypeKey = "general.file_type";
    public const string ContextLengthKey = "bert.context_length";
    public const string EmbeddingLengthKey = "bert.embedding_length";
    public const string FeedForwardLengthKey = "bert.feed_forward_length";
    public const string BlockCountKey = "bert.block_count";
    public const string HeadCountKey = "bert.attention.head_count";
    public const string LayerNormEpsilonKey = "bert.attention.layer_norm_epsilon";
    public const string CausalKey = "bert.attention.causal";
    public const string PoolingTypeKey = "bert.pooling_type";

    public const string TokenizerModelKey = "tokenizer.ggml.model";
    public const string TokensKey = "tokenizer.ggml.tokens";
    public const string TokenTypesKey = "tokenizer.ggml.token_type";
    public const string TokenTypeCountKey = "tokenizer.ggml.token_type_count";
    public const string UnknownTokenKey = "tokenizer.ggml.unknown_token_id";
    public const string SeparatorTokenKey = "tokenizer.ggml.seperator_token_id"; // sic: llama.cpp's spelling
    public const string PaddingTokenKey = "tokenizer.ggml.padding_token_id";
    public const string ClsTokenKey = "tokenizer.ggml.cls_token_id";
    public const string MaskTokenKey = "tokenizer.ggml.mask_token_id";

    /// <summary>
    /// EdgeSlm's own key (llama.cpp ignores it): <c>edgeslm.activation_outliers.TENSOR</c> lists, for a quantized
    /// linear weight, the input columns whose activations are kept in float instead of int8 (see BertEncoder).
    /// </summary>
    public static string ActivationOutliersKey(string tensorName) => "edgeslm.activation_outliers." + tensorName;

    public const string TokenEmbeddings = "token_embd.weight";
    public const string PositionEmbeddings = "position_embd.weight";
    public const string TokenTypeEmbeddings = "token_types.weight";
    public const string EmbeddingNormWeight = "token_embd_norm.weight";
    public const string EmbeddingNormBias = "token_embd_norm.bias";

    /// <summary>llama.cpp's token types (<c>llama_token_type</c>).</summary>
    public const int TokenTypeNormal = 1;
    public const int TokenTypeControl = 3;

    public static string Block(int layer, string part) => $"blk.{layer}.{part}";

    /// <summary>The tensors of one encoder layer, GGUF name suffixes: linear layers have .weight and .bias.</summary>
    public static readonly string[] LinearParts = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_up", "ffn_down"];
    public static readonly string[] NormParts = ["attn_output_norm", "layer_output_norm"];

    /// <summary>WordPiece spelling in llama.cpp's vocabulary: "##x" loses its marker, other normal tokens gain U+2581.</summary>
    public static string ToGgufToken(string token, bool isControl) =>
        isControl ? token : token.StartsWith("##", StringComparison.Ordinal) ? token[2..] : "\u2581" + token;

    public static string FromGgufToken(string token, bool isControl) =>
        isControl ? token : token.StartsWith('\u2581') ? token[1..] : "##" + token;
}
