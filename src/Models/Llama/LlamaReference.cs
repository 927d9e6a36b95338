using EdgeSlm.Kernels.Activations;
using EdgeSlm.Kernels.Attention;
using EdgeSlm.Kernels.Normalization;
using EdgeSlm.Kernels.Positional;

namespace EdgeSlm.Models.Llama;

/// <summary>
/// The slow, obvious forward pass the fast one (<see cref="LlamaDecoder"/>) is held to, in the manner of
/// llama2.c's run.c: one token at a time, all in float, each weight row dequantized when it is used, every step
/// through the kernels' scalar reference tiers. For tests and checks, not for serving.
/// </summary>
public sealed class LlamaReference
{
    private readonly LlamaModel _model;
    private readonly LlamaConfig _c;
    private readonly RopeTable _rope;

    // RunState
    private readonly float[] _x;        // (dim) the residual stream
    private readonly float[] _xb;       // (dim) normed input of a block
    private readonly float[] _q;        // (n_heads * head_size)
    private readonly float[] _att;      // (n_heads * head_size) attention output
    private readonly float[] _hb;       // (hidden_dim) gate, then silu(gate) * up
    private readonly float[] _hb2;      // (hidden_dim) up
    private readonly float[] _row;      // (max(dim, hidden_dim)) one dequantized weight row
    private readonly float[] _scores;   // (context)
    private readonly float[] _keyCache;   // (layer, context, kv_dim)
    private readonly float[] _valueCache; // (layer, context, kv_dim)

    public LlamaReference(LlamaModel model, int context)
    {
        _model = model;
        _c = model.Config;
        Context = context;
        _rope = new RopeTable(_c.Architecture.Rope, _c.HeadSize, context, _c.RopeBase);
        _x = new float[_c.HiddenSize];
        _xb = new float[_c.HiddenSize];
        _q = new float[_c.HeadCount * _c.HeadSize];
        _att = new float[_c.HeadCount * _c.HeadSize];
        _hb = new float[_c.FeedForwardSize];
        _hb2 = new float[_c.FeedForwardSize];
        _row = new float[Math.Max(_c.HiddenSize, Math.Max(_c.FeedForwardSize, _q.Length))];
        _scores = new float[context];
        _keyCache = new float[(long)_c.LayerCount * context * _c.KvSize];
        _valueCache = new float[(long)_c.LayerCount * context * _c.KvSize];
    }

    public int Context { get; }

    /// <summary>Runs token <paramref name="token"/> at <paramref name="position"/> (after positions 0 .. position − 1) and writes its logits.</summary>
    public void Forward(int token, int position, Span<float> logits)
    {
        if ((uint)token >= (uint)_c.VocabularySize || (uint)position >= (uint)Context || logits.Length != _c.VocabularySize)
        {
            throw new ArgumentException($"token {token} of {_c.VocabularySize}, position {position} of {Context}, {logits.Length} logits");
        }
        LlamaWeights w = _model.Weights;
        int kvSize = _c.KvSize;
        w.TokenEmbedding.DequantizeRow(token, _x);
        for (int l = 0; l < _c.LayerCount; l++)
        {
            LlamaLayerWeights layer = w.Layers[l];
            long cacheOffset = ((long)l * Context + position) * kvSize;
            Span<float> k = _keyCache.AsSpan((int)cacheOffset, kvSize);
            Span<float> v = _valueCache.AsSpan((int)cacheOffset, kvSize);

            // attention RMSNorm, then q, k, v (+ biases), RoPE on q and k
            RmsNorm.ComputeReference(_x, layer.AttentionNorm, _c.RmsEpsilon, _xb);
            MatVec(layer.Query, _xb, _q, layer.QueryBias);
            MatVec(layer.Key, _xb, k, layer.KeyBias);
            MatVec(layer.Value, _xb, v, layer.ValueBias);
            _rope.ApplyReference(_q, position);
            _rope.ApplyReference(k, position);

            // causal grouped-query attention over positions 0 .. position
            long layerCache = (long)l * Context * kvSize;
            GroupedQueryAttention.ComputeReference(_q, _keyCache.AsSpan((int)layerCache, Context * kvSize), _valueCache.AsSpan((int)layerCache, Context * kvSize),
                position + 1, _c.HeadCount, _c.KvHeadCount, _c.HeadSize, 1f / MathF.Sqrt(_c.HeadSize), _scores, _att);

            // output projection and residual
            MatVec(layer.AttentionOutput, _att, _xb, null);
            for (int i = 0; i < _x.Length; i++) _x[i] += _xb[i];

            // feed-forward RMSNorm, SwiGLU, down projection and residual
            RmsNorm.ComputeReference(_x, layer.FeedForwardNorm, _c.RmsEpsilon, _xb);
            MatVec(layer.Gate, _xb, _hb, null);
            MatVec(layer.Up, _xb, _hb2, null);
            SwiGlu.ComputeReference(_hb, _hb2, _hb);
            MatVec(layer.Down, _hb, _xb, null);
            for (int i = 0; i < _x.Length; i++) _x[i] += _xb[i];
        }

        // final RMSNorm and the classifier into logits
        RmsNorm.ComputeReference(_x, w.OutputNorm, _c.RmsEpsilon, _x);
        MatVec(w.Output, _x, logits, null);
    }

    /// <summary>y = W x (+ b), each row of W dequantized to float and summed in float.</summary>
    private void MatVec(DecoderMatrix matrix, ReadOnlySpan<float> x, Span<float> y, float[]? bias)
    {
        Span<float> row = _row.AsSpan(0, matrix.Columns);
        for (int r = 0; r < matrix.Rows; r++)
        {
            matrix.DequantizeRow(r, row);
            float sum = 0;
            for (int i = 0; i < row.Length; i++)
            {
                sum += row[i] * x[i];
            }
            y[r] = bias is null ? sum : sum + bias[r];
        }
    }
}
