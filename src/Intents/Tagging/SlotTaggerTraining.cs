using System.Numerics.Tensors;
using EdgeSlm.Intents.Examples;
using EdgeSlm.Intents.Features;

namespace EdgeSlm.Intents.Tagging;

/// <summary>How the slot tagger trains: mini-batch Adam on the CRF's log-likelihood, L2 on the emission weights.</summary>
/// <param name="Threads">Threads of the gradient; the result is the same for any number (the batch is split in fixed parts summed in order).</param>
public sealed record TaggerTraining(int Epochs = 16, float Rate = 0.005f, float L2 = 1e-4f, int BatchSize = 32, int Seed = 20241126, int Threads = 1);

/// <summary>
/// Trains a <see cref="SlotTagger"/> from examples with slot spans (JSONL <c>slots</c>, template expansions) and the
/// encoder's states of their pieces. Examples without slots train it too: they are all O.
/// </summary>
public static class SlotTaggerTraining
{
    /// <summary>Parts a batch's gradient is split into, whatever the thread count, so the sum is always taken in the same order.</summary>
    private const int Parts = 4;

    /// <summary>
    /// The tagger of <paramref name="examples"/>, whose pieces are sentences 0 to n−1 of <paramref name="tokens"/>;
    /// null when no example has a slot span.
    /// </summary>
    public static SlotTagger? Train(IReadOnlyList<IntentExample> examples, TokenStates tokens, TaggerTraining settings)
    {
        if (tokens.SentenceCount < examples.Count)
        {
            throw new ArgumentException($"{examples.Count} examples need as many sentences of token states, not {tokens.SentenceCount}", nameof(tokens));
        }
        string[] slotNames = examples.SelectMany(e => e.Slots).Where(s => s.End > s.Start).Select(s => s.Slot).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray();
        if (slotNames.Length == 0)
        {
            return null;
        }
        var tags = new SlotTags(slotNames);
        var intentSlots = examples.SelectMany(e => e.Slots.Where(s => s.End > s.Start).Select(s => (e.Intent, Slot: tags.Index[s.Slot])))
            .GroupBy(p => p.Intent, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.Select(p => p.Slot).Distinct().Order().ToArray(), StringComparer.Ordinal);
        int hidden = tokens.Hidden, d = SlotTagger.FeatureCountOf(hidden, slotNames.Length), k = tags.Count;

        // The gazetteer: every phrase a slot was said as, with how many examples said it.
        var phraseCounts = new Dictionary<(string Phrase, int Slot), int>();
        foreach (IntentExample example in examples)
        {
            foreach (SlotSpan span in example.Slots.Where(s => s.End > s.Start && s.End <= example.Text.Length && s.End - s.Start <= SlotGazetteer.MaxPhraseLength))
            {
                var key = (SlotGazetteer.Key(example.Text, span.Start, span.End), tags.Index[span.Slot]);
                phraseCounts[key] = phraseCounts.GetValueOrDefault(key) + 1;
            }
        }
        var gazetteer = new SlotGazetteer(phraseCounts.Keys.GroupBy(p => p.Phrase, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.Select(p => p.Slot).Order().ToArray(), StringComparer.Ordinal));

        // Standardisation over every piece between [CLS] and [SEP].
        var mean = new double[hidden];
        var square = new double[hidden];
        long pieces = 0;
        for (int s = 0; s < examples.Count; s++)
        {
            ReadOnlySpan<float> states = tokens.States(s);
            for (int p = 1; p < tokens.PiecesOf(s) - 1; p++, pieces++)
            {
                for (int h = 0; h < hidden; h++)
                {
                    double v = states[p * hidden + h];
                    mean[h] += v;
                    square[h] += v * v;
                }
            }
        }
        var meanF = new float[hidden];
        var inverseScale = new float[hidden];
        for (int h = 0; h < hidden; h++)
        {
            double m = pieces == 0 ? 0 : mean[h] / pieces, variance = pieces == 0 ? 1 : Math.Max(0, square[h] / pieces - m * m);
            meanF[h] = (float)m;
            inverseScale[h] = (float)(1 / Math.Sqrt(variance + 1e-6));
        }

        // Each sentence's feature rows and gold tags, packed.
        var offsets = new int[examples.Count + 1];
        for (int s = 0; s < examples.Count; s++)
        {
            offsets[s + 1] = offsets[s] + Math.Max(0, tokens.PiecesOf(s) - 2);
        }
        var x = new float[(long)offsets[^1] * d];
        var gold = new int[offsets[^1]];
        for (int s = 0; s < examples.Count; s++)
        {
            int steps = offsets[s + 1] - offsets[s];
            if (steps == 0) continue;
            ReadOnlySpan<int> starts = tokens.Starts(s), ends = tokens.Ends(s);
            Span<float> rows = x.AsSpan(offsets[s] * d, steps * d);
            SlotTagger.Features(examples[s].Text, tokens.States(s), starts, ends, hidden, meanF, inverseScale, gazetteer, slotNames.Length, rows);
            tags.Label(examples[s].Slots, starts.Slice(1, steps), ends.Slice(1, steps), gold.AsSpan(offsets[s], steps));
            // Leave one out: a phrase only this example said is not in the gazetteer for it, as a new value will not
            // be in it for an utterance; else the tagger would learn that every slot is a known phrase.
            foreach (SlotSpan span in examples[s].Slots.Where(sp => sp.End > sp.Start && sp.End - sp.Start <= SlotGazetteer.MaxPhraseLength))
            {
                int slot = tags.Index[span.Slot];
                if (phraseCounts.GetValueOrDefault((SlotGazetteer.Key(examples[s].Text, span.Start, span.End), slot)) != 1) continue;
                for (int t = 0; t < steps; t++)
                {
                    if (starts[t + 1] >= span.Start && ends[t + 1] <= span.End) rows[t * d + hidden + SlotTagger.LexicalFeatures + slot] = 0;
                }
            }
        }

        var parameters = new Parameters(k, d);
        var gradients = Enumerable.Range(0, Parts).Select(_ => new Parameters(k, d)).ToArray();
        var m1 = new Parameters(k, d);
        var m2 = new Parameters(k, d);
        int maxSteps = Enumerable.Range(0, examples.Count).Max(s => offsets[s + 1] - offsets[s]);
        var emissions = Enumerable.Range(0, Parts).Select(_ => new float[Math.Max(1, maxSteps) * k]).ToArray();
        var emissionGradients = Enumerable.Range(0, Parts).Select(_ => new float[Math.Max(1, maxSteps) * k]).ToArray();
        int[] order = Enumerable.Range(0, examples.Count).Where(s => offsets[s + 1] > offsets[s]).ToArray();
        var random = new Random(settings.Seed);
        var parallel = new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, settings.Threads) };
        int step = 0;
        for (int epoch = 0; epoch < settings.Epochs; epoch++)
        {
            random.Shuffle(order);
            // The rate falls linearly to a tenth over the epochs.
            float rate = settings.Rate * (1 - 0.9f * epoch / Math.Max(1, settings.Epochs - 1));
            for (int batchStart = 0; batchStart < order.Length; batchStart += settings.BatchSize)
            {
                int batch = Math.Min(settings.BatchSize, order.Length - batchStart);
                Parallel.For(0, Parts, parallel, part =>
                {
                    Parameters g = gradients[part];
                    g.Clear();
                    for (int b = part; b < batch; b += Parts)
                    {
                        int s = order[batchStart + b];
                        int steps = offsets[s + 1] - offsets[s];
                        ReadOnlySpan<float> rows = x.AsSpan(offsets[s] * d, steps * d);
                        Span<float> e = emissions[part].AsSpan(0, steps * k), ge = emissionGradients[part].AsSpan(0, steps * k);
                        SlotTagger.Emissions(parameters.Weights, parameters.Bias, d, k, rows, steps, e);
                        ge.Clear();
                        LinearChainCrf.LogLikelihood(e, parameters.Transitions, parameters.Start, parameters.End, gold.AsSpan(offsets[s], steps),
                            ge, g.Transitions, g.Start, g.End);
                        for (int t = 0; t < steps; t++)
                        {
                            ReadOnlySpan<float> row = rows.Slice(t * d, d);
                            for (int j = 0; j < k; j++)
                            {
                                float gj = ge[t * k + j];
                                if (MathF.Abs(gj) < 1e-6f) continue;
                                Span<float> w = g.Weights.AsSpan(j * d, d);
                                TensorPrimitives.MultiplyAdd(row, gj, w, w);
                                g.Bias[j] += gj;
                            }
                        }
                    }
                });
                for (int part = 1; part < Parts; part++)
                {
                    gradients[0].Add(gradients[part]);
                }
                // Descend on −log-likelihood per sentence, with L2 on the weights.
                Parameters total = gradients[0];
                total.Scale(-1f / batch);
                TensorPrimitives.MultiplyAdd(parameters.Weights, settings.L2, total.Weights, total.Weights);
                step++;
                parameters.AdamStep(total, m1, m2, rate, step);
            }
        }
        return new SlotTagger(tags, hidden, meanF, inverseScale, parameters.Weights, parameters.Bias, parameters.Transitions, parameters.Start, parameters.End, intentSlots, gazetteer);
    }

    private sealed class Parameters(int k, int d)
    {
        public float[] Weights { get; } = new float[k * d];
        public float[] Bias { get; } = new float[k];
        public float[] Transitions { get; } = new float[k * k];
        public float[] Start { get; } = new float[k];
        public float[] End { get; } = new float[k];

        private IEnumerable<float[]> All => [Weights, Bias, Transitions, Start, End];

        public void Clear()
        {
            foreach (float[] a in All) Array.Clear(a);
        }

        public void Add(Parameters other)
        {
            foreach ((float[] a, float[] b) in All.Zip(other.All)) TensorPrimitives.Add(a, b, a);
        }

        public void Scale(float factor)
        {
            foreach (float[] a in All) TensorPrimitives.Multiply(a, factor, a);
        }

        public void AdamStep(Parameters gradient, Parameters m, Parameters v, float rate, int step)
        {
            const float beta1 = 0.9f, beta2 = 0.999f, epsilon = 1e-8f;
            float stepSize = rate * MathF.Sqrt(1f - MathF.Pow(beta2, step)) / (1f - MathF.Pow(beta1, step));
            foreach ((((float[] p, float[] g), float[] mm), float[] vv) in All.Zip(gradient.All).Zip(m.All).Zip(v.All))
            {
                for (int i = 0; i < p.Length; i++)
                {
                    mm[i] = beta1 * mm[i] + (1 - beta1) * g[i];
                    vv[i] = beta2 * vv[i] + (1 - beta2) * g[i] * g[i];
                    p[i] -= stepSize * mm[i] / (MathF.Sqrt(vv[i]) + epsilon);
                }
            }
        }
    }
}
