namespace EdgeSlm.Models.Bert.Training;

/// <summary>
/// AdamW (Loshchilov and Hutter): m = β1·m + (1−β1)·g, v = β2·v + (1−β2)·g², w −= lr·(m̂/(√v̂ + ε) + λ·w), with bias
/// correction and decoupled weight decay λ, which (as in BERT's recipe) spares biases and LayerNorm parameters. The
/// token embedding table is updated only in the rows a batch used (lazy Adam): the table is half the encoder, and a
/// batch of 32 sentences touches a few hundred of its 30522 rows.
/// </summary>
public sealed class AdamW
{
    private readonly BertParameters _m, _v;
    private readonly int[] _tokenSteps;   // per token row: the steps it was updated in (its own bias correction)
    private int _step;

    public AdamW(BertConfig config, float beta1 = 0.9f, float beta2 = 0.999f, float epsilon = 1e-6f, float weightDecay = 0.01f)
    {
        _m = new BertParameters(config);
        _v = new BertParameters(config);
        _tokenSteps = new int[config.VocabularySize];
        Beta1 = beta1;
        Beta2 = beta2;
        Epsilon = epsilon;
        WeightDecay = weightDecay;
    }

    public float Beta1 { get; }
    public float Beta2 { get; }
    public float Epsilon { get; }
    public float WeightDecay { get; }

    /// <summary>One step on every tensor but the token embeddings, and on the token rows in <paramref name="tokenRows"/>.</summary>
    public void Step(BertParameters parameters, BertParameters gradients, IReadOnlyCollection<int> tokenRows, float learningRate)
    {
        _step++;
        int hidden = parameters.Config.HiddenSize;
        using IEnumerator<NamedTensor> m = _m.Tensors.GetEnumerator(), v = _v.Tensors.GetEnumerator(), g = gradients.Tensors.GetEnumerator();
        foreach (NamedTensor w in parameters.Tensors)
        {
            m.MoveNext();
            v.MoveNext();
            g.MoveNext();
            float decay = Decays(w.Name) ? WeightDecay : 0;
            if (ReferenceEquals(w.Values, parameters.TokenEmbeddings))
            {
                foreach (int row in tokenRows)
                {
                    int step = ++_tokenSteps[row];
                    Update(w.Values.AsSpan(row * hidden, hidden), g.Current.Values.AsSpan(row * hidden, hidden),
                        m.Current.Values.AsSpan(row * hidden, hidden), v.Current.Values.AsSpan(row * hidden, hidden), step, learningRate, decay);
                }
                continue;
            }
            Update(w.Values, g.Current.Values, m.Current.Values, v.Current.Values, _step, learningRate, decay);
        }
    }

    /// <summary>One AdamW step on plain arrays (the classifier head beside the encoder) with its own step count.</summary>
    public void Update(Span<float> w, ReadOnlySpan<float> g, Span<float> m, Span<float> v, int step, float learningRate, float decay)
    {
        float correction1 = 1 - MathF.Pow(Beta1, step), correction2 = 1 - MathF.Pow(Beta2, step);
        float stepSize = learningRate / correction1, inverseRoot2 = 1 / MathF.Sqrt(correction2);
        for (int i = 0; i < w.Length; i++)
        {
            float gi = g[i];
            float mi = m[i] = Beta1 * m[i] + (1 - Beta1) * gi;
            float vi = v[i] = Beta2 * v[i] + (1 - Beta2) * gi * gi;
            w[i] -= stepSize * mi / (MathF.Sqrt(vi) * inverseRoot2 + Epsilon) + learningRate * decay * w[i];
        }
    }

    /// <summary>Weight matrices and embedding tables decay; biases and LayerNorm gains and shifts do not.</summary>
    private static bool Decays(string name) => !name.EndsWith(".bias", StringComparison.Ordinal) && !name.Contains("norm", StringComparison.Ordinal);
}
