using EdgeSlm.Kernels.MatMul;

namespace EdgeSlm.Models.Bert;

/// <summary>
/// The activations of one <see cref="BertEncoder"/>, for up to <see cref="Capacity"/> tokens of a batch (its sentences
/// packed one after another). Made for the largest batch seen: after that, encoding allocates nothing.
/// </summary>
internal sealed class BertRunState(BertConfig config)
{
    /// <summary>Outlier columns a linear layer may keep in float (BertModel's limit).</summary>
    private const int MaxOutlierColumns = 64;

    public int Capacity { get; private set; }
    public float[] Hidden { get; private set; } = [];        // (tokens, hidden)
    public float[] Query { get; private set; } = [];         // (tokens, hidden), heads side by side
    public float[] Key { get; private set; } = [];           // (tokens, hidden)
    public float[] Value { get; private set; } = [];         // (tokens, hidden)
    public float[] Context { get; private set; } = [];       // (tokens, hidden) attention output before its projection
    public float[] Projected { get; private set; } = [];     // (tokens, hidden) a projection's output, before the residual add
    public float[] FeedForward { get; private set; } = [];   // (tokens, feed-forward)
    public float[] Scores { get; private set; } = [];        // (heads, context) one query's attention weights
    public float[] OutlierInputs { get; private set; } = []; // (tokens, outliers) a linear layer's outlier inputs while zeroed for int8
    public QuantizedActivations Quantized { get; } = new();  // (tokens, columns) a linear layer's input in Q8_0

    public void EnsureCapacity(int tokens)
    {
        if (tokens <= Capacity)
        {
            return;
        }
        int hidden = config.HiddenSize;
        Capacity = Math.Max(Math.Max(tokens, 64), Capacity * 2);
        Hidden = new float[Capacity * hidden];
        Query = new float[Capacity * hidden];
        Key = new float[Capacity * hidden];
        Value = new float[Capacity * hidden];
        Context = new float[Capacity * hidden];
        Projected = new float[Capacity * hidden];
        FeedForward = new float[Capacity * config.FeedForwardSize];
        OutlierInputs = new float[Capacity * MaxOutlierColumns];
        Scores = new float[config.HeadCount * config.ContextLength];
    }
}
