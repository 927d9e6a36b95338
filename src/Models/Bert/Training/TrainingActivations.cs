namespace EdgeSlm.Models.Bert.Training;

/// <summary>One layer's activations that its backward pass reads, for one sentence of up to Capacity tokens.</summary>
public sealed class LayerActivations(BertConfig config, int capacity)
{
    public float[] Input { get; } = new float[config.HiddenSize * capacity];              // (tokens, hidden): the layer's input
    public float[] Query { get; } = new float[config.HiddenSize * capacity];              // (tokens, hidden)
    public float[] Key { get; } = new float[config.HiddenSize * capacity];                // (tokens, hidden)
    public float[] Value { get; } = new float[config.HiddenSize * capacity];              // (tokens, hidden)
    public float[] Probabilities { get; } = new float[config.HeadCount * capacity * capacity]; // (heads, tokens, tokens)
    public float[] Context { get; } = new float[config.HiddenSize * capacity];            // (tokens, hidden): attention before its output projection
    public float[] AttentionNormalized { get; } = new float[config.HiddenSize * capacity]; // (tokens, hidden): x̂ of the first LayerNorm
    public float[] AttentionRstd { get; } = new float[capacity];                          // (tokens)
    public float[] Attended { get; } = new float[config.HiddenSize * capacity];           // (tokens, hidden): after the first LayerNorm
    public float[] Up { get; } = new float[config.FeedForwardSize * capacity];            // (tokens, feed-forward): before GELU
    public float[] Activated { get; } = new float[config.FeedForwardSize * capacity];     // (tokens, feed-forward): after GELU
    public float[] OutputNormalized { get; } = new float[config.HiddenSize * capacity];   // (tokens, hidden): x̂ of the second LayerNorm
    public float[] OutputRstd { get; } = new float[capacity];                             // (tokens)
}

/// <summary>
/// What <see cref="TrainableEncoder.Forward"/> keeps of one sentence for <see cref="TrainableEncoder.Backward"/>, and the
/// backward pass's scratch: allocated once per worker for the longest sentence it will see, reused for every sentence.
/// </summary>
public sealed class TrainingActivations
{
    public TrainingActivations(BertConfig config, int capacity)
    {
        if (capacity < 1 || capacity > config.ContextLength)
        {
            throw new ArgumentOutOfRangeException(nameof(capacity), $"capacity {capacity} must be from 1 to the context length {config.ContextLength}");
        }
        Capacity = capacity;
        int hidden = config.HiddenSize * capacity, feedForward = config.FeedForwardSize * capacity;
        Tokens = new int[capacity];
        KeyValid = new bool[capacity];
        EmbeddingNormalized = new float[hidden];
        EmbeddingRstd = new float[capacity];
        Layers = Enumerable.Range(0, config.LayerCount).Select(_ => new LayerActivations(config, capacity)).ToArray();
        States = new float[hidden];
        Pooled = new float[config.HiddenSize];
        Embedding = new float[config.HiddenSize];
        GradientA = new float[hidden];
        GradientB = new float[hidden];
        GradientC = new float[hidden];
        GradientQuery = new float[hidden];
        GradientKey = new float[hidden];
        GradientValue = new float[hidden];
        GradientFeedForward = new float[feedForward];
        GradientActivated = new float[feedForward];
        Scratch = new float[Math.Max(config.HiddenSize, capacity)];
    }

    public int Capacity { get; }
    public int Count { get; internal set; }                  // tokens of the current sentence
    public int[] Tokens { get; }                             // (capacity)
    public bool[] KeyValid { get; }                          // (capacity): true for every token of the sentence (no padding within one)
    public float[] EmbeddingNormalized { get; }              // (tokens, hidden): x̂ of the embedding LayerNorm
    public float[] EmbeddingRstd { get; }                    // (tokens)
    public LayerActivations[] Layers { get; }
    public float[] States { get; }                           // (tokens, hidden): the last layer's output, the token states
    public float[] Pooled { get; }                           // (hidden): pooled, before L2 normalisation
    public float[] Embedding { get; }                        // (hidden): the sentence embedding, L2-normalised
    public float PooledNorm { get; internal set; }

    // Backward scratch, (tokens, hidden) or (tokens, feed-forward).
    internal float[] GradientA { get; }
    internal float[] GradientB { get; }
    internal float[] GradientC { get; }
    internal float[] GradientQuery { get; }
    internal float[] GradientKey { get; }
    internal float[] GradientValue { get; }
    internal float[] GradientFeedForward { get; }
    internal float[] GradientActivated { get; }
    internal float[] Scratch { get; }
}
