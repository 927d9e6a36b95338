namespace EdgeSlm.Models.Llama;

/// <summary>
/// Picks the next token from logits: the largest (greedy, temperature 0), or a draw with a seeded generator, so the
/// same seed gives the same text. The draw keeps the <c>topK</c> largest logits (0: all), then the fewest of those
/// whose probabilities (softmax at temperature 1) reach <c>topP</c> (1: all), the order of llama.cpp's default
/// sampler chain, and draws from softmax(logits / T) over what is left. Allocates nothing per token.
/// </summary>
public sealed class TokenSampler
{
    private readonly float _temperature;
    private readonly int _topK;
    private readonly float _topP;
    private readonly Random _random;
    private readonly float[] _keys;       // (vocab_size) candidate logits, then their weights
    private readonly int[] _ids;          // (vocab_size) candidate token ids

    public TokenSampler(int vocabularySize, float temperature = 0f, int seed = 0, int topK = 0, float topP = 1f)
    {
        if (!(temperature >= 0) || float.IsInfinity(temperature))
        {
            throw new ArgumentOutOfRangeException(nameof(temperature), temperature, "The temperature is 0 (greedy) or a positive number.");
        }
        if (topK < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(topK), topK, "top-k is 0 (all tokens) or a positive count.");
        }
        if (!(topP > 0 && topP <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(topP), topP, "top-p is a probability in (0, 1].");
        }
        _temperature = temperature;
        _topK = topK;
        _topP = topP;
        _random = new Random(seed);
        _keys = new float[vocabularySize];
        _ids = new int[vocabularySize];
    }

    public int Next(ReadOnlySpan<float> logits)
    {
        if (_temperature == 0f)
        {
            return ArgMax(logits);
        }
        int count;
        bool sorted;
        if (_topK > 0 && _topK < logits.Length)
        {
            count = SelectLargest(logits, _topK);
            sorted = true;
        }
        else
        {
            count = logits.Length;
            logits.CopyTo(_keys);
            for (int i = 0; i < count; i++) _ids[i] = i;
            sorted = false;
        }
        Span<float> keys = _keys.AsSpan(0, count);
        Span<int> ids = _ids.AsSpan(0, count);
        if (_topP < 1f)
        {
            if (!sorted)
            {
                SortDescending(keys, ids);
            }
            // The fewest candidates whose probability at temperature 1 reaches top-p.
            float max = keys[0];
            double total = 0;
            foreach (float key in keys) total += Math.Exp(key - max);
            double running = 0;
            int keep = count;
            for (int i = 0; i < count; i++)
            {
                running += Math.Exp(keys[i] - max);
                if (running >= _topP * total)
                {
                    keep = i + 1;
                    break;
                }
            }
            keys = keys[..keep];
            ids = ids[..keep];
        }

        // Draw from softmax(logits / T) over the candidates.
        float best = float.NegativeInfinity;
        foreach (float key in keys) best = Math.Max(best, key);
        double sum = 0;
        for (int i = 0; i < keys.Length; i++)
        {
            keys[i] = MathF.Exp((keys[i] - best) / _temperature);
            sum += keys[i];
        }
        double target = _random.NextDouble() * sum;
        double cumulative = 0;
        for (int i = 0; i < keys.Length; i++)
        {
            cumulative += keys[i];
            if (cumulative > target)
            {
                return ids[i];
            }
        }
        return ids[0];
    }

    /// <summary>The <paramref name="k"/> largest logits and their ids into the buffers, largest first (a min-heap of k).</summary>
    private int SelectLargest(ReadOnlySpan<float> logits, int k)
    {
        Span<float> heap = _keys.AsSpan(0, k);
        Span<int> ids = _ids.AsSpan(0, k);
        int size = 0;
        for (int i = 0; i < logits.Length; i++)
        {
            float v = logits[i];
            if (size < k)
            {
                int c = size++;
                while (c > 0 && heap[(c - 1) / 2] > v)
                {
                    heap[c] = heap[(c - 1) / 2];
                    ids[c] = ids[(c - 1) / 2];
                    c = (c - 1) / 2;
                }
                heap[c] = v;
                ids[c] = i;
            }
            else if (v > heap[0])
            {
                int c = 0;
                while (true)
                {
                    int child = 2 * c + 1;
                    if (child >= k) break;
                    if (child + 1 < k && heap[child + 1] < heap[child]) child++;
                    if (heap[child] >= v) break;
                    heap[c] = heap[child];
                    ids[c] = ids[child];
                    c = child;
                }
                heap[c] = v;
                ids[c] = i;
            }
        }
        SortDescending(heap, ids);
        return k;
    }

    private static void SortDescending(Span<float> keys, Span<int> ids)
    {
        foreach (ref float key in keys) key = -key;
        keys.Sort(ids);
        foreach (ref float key in keys) key = -key;
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
