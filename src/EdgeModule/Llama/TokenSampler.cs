namespace EdgeSlm.Models.Llama;

/// <summary>
/// Picks the next token from logits: the largest (greedy, temperature 0), or a draw from softmax(logits / T) with
/// a seeded generator, so the same seed gives the same text. Allocates nothing per token after construction.
/// </summary>
public sealed class TokenSampler
{
    private readonly float _temperature;
    private readonly Random _random;
    private readonly float[] _probabilities;

    public TokenSampler(int vocabularySize, float temperature = 0f, int seed = 0)
    {
        if (!(temperature >= 0) || float.IsInfinity(temperature))
        {
            throw new ArgumentOutOfRangeException(nameof(temperature), temperature, "The temperature is 0 (greedy) or a positive number.");
        }
        _temperature = temperature;
        _random = new Random(seed);
        _probabilities = new float[vocabularySize];
    }

    public int Next(ReadOnlySpan<float> logits)
    {
        int best = ArgMax(logits);
        if (_temperature == 0f)
        {
            return best;
        }
        Span<float> p = _probabilities.AsSpan(0, logits.Length);
        float max = logits[best];
        double sum = 0;
        for (int i = 0; i < logits.Length; i++)
        {
            p[i] = MathF.Exp((logits[i] - max) / _temperature);
            sum += p[i];
        }
        double target = _random.NextDouble() * sum;
        double running = 0;
        for (int i = 0; i < p.Length; i++)
        {
            running += p[i];
            if (running > target)
            {
                return i;
            }
        }
        return best;
    }

    /// <summary>The index of the largest value, the first on a tie.</summary>
    public static int ArgMax(ReadOnlySpan<float> values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++)
        {
            if (values[i] > values[best]) best = i;
        }
        return best;
    }
}
