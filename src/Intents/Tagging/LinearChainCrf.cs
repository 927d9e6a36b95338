using System.Buffers;

namespace EdgeSlm.Intents.Tagging;

/// <summary>
/// A linear-chain conditional random field over K tags: a path y scores
/// start[y₀] + Σₜ emissions[t, yₜ] + Σₜ transitions[yₜ₋₁, yₜ] + end[y_last], and p(y) = exp(score) / Z over the
/// paths the BIO structure allows (<see cref="SlotTags.CanStart"/>, <see cref="SlotTags.CanFollow"/>): the others
/// have probability 0 in training and are never decoded. Emissions are (steps, K) row after row; transitions
/// (from, to). Scratch comes from the shared array pools, so neither decoding nor a gradient allocates.
/// </summary>
public static class LinearChainCrf
{
    /// <summary>
    /// The most likely allowed path (Viterbi). <paramref name="allowedTags"/>, when not empty, bars the tags that
    /// are false in it (the slots of other intents). Returns the path's score.
    /// </summary>
    public static float Decode(ReadOnlySpan<float> emissions, ReadOnlySpan<float> transitions, ReadOnlySpan<float> start, ReadOnlySpan<float> end,
        ReadOnlySpan<bool> allowedTags, Span<int> path)
    {
        int k = start.Length, steps = path.Length;
        if (steps == 0) return 0;
        float[] scoreArray = ArrayPool<float>.Shared.Rent(2 * k);
        int[] backArray = ArrayPool<int>.Shared.Rent(steps * k);
        try
        {
            Span<float> score = scoreArray.AsSpan(0, k), next = scoreArray.AsSpan(k, k);
            Span<int> back = backArray.AsSpan(0, steps * k);
            for (int j = 0; j < k; j++)
            {
                score[j] = Allowed(allowedTags, j) && SlotTags.CanStart(j) ? start[j] + emissions[j] : float.NegativeInfinity;
            }
            for (int t = 1; t < steps; t++)
            {
                for (int j = 0; j < k; j++)
                {
                    float best = float.NegativeInfinity;
                    int from = 0;
                    if (Allowed(allowedTags, j))
                    {
                        for (int i = 0; i < k; i++)
                        {
                            if (!SlotTags.CanFollow(i, j)) continue;
                            float s = score[i] + transitions[i * k + j];
                            if (s > best) (best, from) = (s, i);
                        }
                    }
                    next[j] = best + emissions[t * k + j];
                    back[t * k + j] = from;
                }
                next.CopyTo(score);
            }
            float total = float.NegativeInfinity;
            int last = 0;
            for (int j = 0; j < k; j++)
            {
                float s = score[j] + end[j];
                if (s > total) (total, last) = (s, j);
            }
            path[steps - 1] = last;
            for (int t = steps - 1; t > 0; t--)
            {
                path[t - 1] = back[t * k + path[t]];
            }
            return total;
        }
        finally
        {
            ArrayPool<float>.Shared.Return(scoreArray);
            ArrayPool<int>.Shared.Return(backArray);
        }
    }

    private static bool Allowed(ReadOnlySpan<bool> allowedTags, int tag) => allowedTags.IsEmpty || allowedTags[tag];

    /// <summary>The score of one path, as the class summary defines it.</summary>
    public static double PathScore(ReadOnlySpan<float> emissions, ReadOnlySpan<float> transitions, ReadOnlySpan<float> start, ReadOnlySpan<float> end, ReadOnlySpan<int> path)
    {
        int k = start.Length;
        double score = (double)start[path[0]] + end[path[^1]];
        for (int t = 0; t < path.Length; t++)
        {
            score += emissions[t * k + path[t]];
            if (t > 0) score += transitions[path[t - 1] * k + path[t]];
        }
        return score;
    }

    /// <summary>
    /// log p(<paramref name="gold"/>) and its gradient: adds ∂ log p / ∂ parameter to <paramref name="emissionGradient"/>
    /// (steps, K), <paramref name="transitionGradient"/>, <paramref name="startGradient"/> and
    /// <paramref name="endGradient"/>: the gold path's counts minus their expectations under the model. Forward-backward
    /// in double, in probability space with each step's forward sum normalised to 1 (the scaled recursions of HMMs):
    /// one exponential per parameter and per emission instead of one per pair of tags and step.
    /// </summary>
    public static double LogLikelihood(ReadOnlySpan<float> emissions, ReadOnlySpan<float> transitions, ReadOnlySpan<float> start, ReadOnlySpan<float> end,
        ReadOnlySpan<int> gold, Span<float> emissionGradient, Span<float> transitionGradient, Span<float> startGradient, Span<float> endGradient)
    {
        int k = start.Length, steps = gold.Length;
        double[] scratch = ArrayPool<double>.Shared.Rent(k * k + 2 * k + 3 * steps * k + steps + 1);
        try
        {
            Span<double> psi = scratch.AsSpan(0, k * k);                 // exp(transition), 0 where barred
            Span<double> sigma = scratch.AsSpan(k * k, k);               // exp(start), 0 where barred
            Span<double> omega = scratch.AsSpan(k * k + k, k);           // exp(end)
            Span<double> phi = scratch.AsSpan(k * k + 2 * k, steps * k); // exp(emission − the step's largest)
            Span<double> alpha = scratch.AsSpan(k * k + 2 * k + steps * k, steps * k);
            Span<double> beta = scratch.AsSpan(k * k + 2 * k + 2 * steps * k, steps * k);
            Span<double> scale = scratch.AsSpan(k * k + 2 * k + 3 * steps * k, steps + 1);
            for (int i = 0; i < k; i++)
            {
                for (int j = 0; j < k; j++) psi[i * k + j] = SlotTags.CanFollow(i, j) ? Math.Exp(transitions[i * k + j]) : 0;
                sigma[i] = SlotTags.CanStart(i) ? Math.Exp(start[i]) : 0;
                omega[i] = Math.Exp(end[i]);
            }
            double logZ = 0;
            for (int t = 0; t < steps; t++)
            {
                double max = double.NegativeInfinity;
                for (int j = 0; j < k; j++) max = Math.Max(max, emissions[t * k + j]);
                for (int j = 0; j < k; j++) phi[t * k + j] = Math.Exp(emissions[t * k + j] - max);
                logZ += max;
            }
            // Forward, each step normalised by its sum.
            for (int t = 0; t < steps; t++)
            {
                Span<double> a = alpha.Slice(t * k, k);
                if (t == 0)
                {
                    for (int j = 0; j < k; j++) a[j] = sigma[j] * phi[j];
                }
                else
                {
                    a.Clear();
                    ReadOnlySpan<double> previous = alpha.Slice((t - 1) * k, k);
                    for (int i = 0; i < k; i++)
                    {
                        double p = previous[i];
                        if (p == 0) continue;
                        ReadOnlySpan<double> row = psi.Slice(i * k, k);
                        for (int j = 0; j < k; j++) a[j] += p * row[j];
                    }
                    for (int j = 0; j < k; j++) a[j] *= phi[t * k + j];
                }
                double sum = 0;
                for (int j = 0; j < k; j++) sum += a[j];
                scale[t] = sum;
                for (int j = 0; j < k; j++) a[j] /= sum;
                logZ += Math.Log(sum);
            }
            double last = 0;
            for (int j = 0; j < k; j++) last += alpha[(steps - 1) * k + j] * omega[j];
            scale[steps] = last;
            logZ += Math.Log(last);
            // Backward, with the forward pass's scales, so that alpha·beta is each step's marginal.
            for (int i = 0; i < k; i++) beta[(steps - 1) * k + i] = omega[i] / last;
            for (int t = steps - 2; t >= 0; t--)
            {
                for (int i = 0; i < k; i++)
                {
                    double sum = 0;
                    ReadOnlySpan<double> row = psi.Slice(i * k, k);
                    for (int j = 0; j < k; j++) sum += row[j] * phi[(t + 1) * k + j] * beta[(t + 1) * k + j];
                    beta[t * k + i] = sum / scale[t + 1];
                }
            }

            // Expected counts, subtracted; the gold path's, added.
            for (int t = 0; t < steps; t++)
            {
                for (int j = 0; j < k; j++)
                {
                    float marginal = (float)(alpha[t * k + j] * beta[t * k + j]);
                    emissionGradient[t * k + j] -= marginal;
                    if (t == 0) startGradient[j] -= marginal;
                    if (t == steps - 1) endGradient[j] -= marginal;
                }
                emissionGradient[t * k + gold[t]] += 1;
            }
            for (int t = 1; t < steps; t++)
            {
                for (int i = 0; i < k; i++)
                {
                    double a = alpha[(t - 1) * k + i] / scale[t];
                    if (a == 0) continue;
                    for (int j = 0; j < k; j++)
                    {
                        transitionGradient[i * k + j] -= (float)(a * psi[i * k + j] * phi[t * k + j] * beta[t * k + j]);
                    }
                }
                transitionGradient[gold[t - 1] * k + gold[t]] += 1;
            }
            startGradient[gold[0]] += 1;
            endGradient[gold[^1]] += 1;
            return PathScore(emissions, transitions, start, end, gold) - logZ;
        }
        finally
        {
            ArrayPool<double>.Shared.Return(scratch);
        }
    }
}
