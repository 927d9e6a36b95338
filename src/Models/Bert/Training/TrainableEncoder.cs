using System.Numerics.Tensors;
using EdgeSlm.Kernels.Activations;
using EdgeSlm.Kernels.Attention;
using EdgeSlm.Kernels.Float;
using EdgeSlm.Kernels.Normalization;

namespace EdgeSlm.Models.Bert.Training;

/// <summary>
/// The BERT encoder in float over <see cref="BertParameters"/>, one sentence at a time, with the backward pass that
/// fine-tuning needs. The forward is the one <see cref="BertReference"/> computes (embeddings of token type 0, post-norm
/// layers, erf GELU, mean or [CLS] pooling, L2 normalisation) and keeps what the backward reads in
/// <see cref="TrainingActivations"/>. Thread-safe for distinct activations and gradients: workers share the parameters
/// read-only.
/// </summary>
public sealed class TrainableEncoder(BertParameters parameters)
{
    public BertParameters Parameters { get; } = parameters;
    public BertConfig Config => Parameters.Config;

    /// <summary>Runs <paramref name="tokens"/> and returns the L2-normalised sentence embedding (a view of <paramref name="a"/>).</summary>
    public ReadOnlySpan<float> Forward(ReadOnlySpan<int> tokens, TrainingActivations a)
    {
        int n = tokens.Length, hidden = Config.HiddenSize, ff = Config.FeedForwardSize;
        if (n == 0 || n > a.Capacity)
        {
            throw new ArgumentException($"a sentence of {n} tokens does not fit activations for {a.Capacity}");
        }
        a.Count = n;
        tokens.CopyTo(a.Tokens);
        a.KeyValid.AsSpan(0, n).Fill(true);
        BertParameters p = Parameters;

        // Embeddings: token + position + token type 0, then LayerNorm; the result is layer 0's input.
        Span<float> x = a.Layers[0].Input.AsSpan(0, n * hidden);
        for (int t = 0; t < n; t++)
        {
            if ((uint)tokens[t] >= (uint)Config.VocabularySize)
            {
                throw new ArgumentOutOfRangeException(nameof(tokens), $"token id {tokens[t]} is outside the vocabulary of {Config.VocabularySize}");
            }
            Span<float> row = x.Slice(t * hidden, hidden);
            TensorPrimitives.Add(p.TokenEmbeddings.AsSpan(tokens[t] * hidden, hidden), p.PositionEmbeddings.AsSpan(t * hidden, hidden), row);
            TensorPrimitives.Add(row, p.TokenTypeEmbeddings.AsSpan(0, hidden), row);
            a.EmbeddingRstd[t] = LayerNorm.Forward(row, p.EmbeddingNormWeight, p.EmbeddingNormBias, Config.LayerNormEpsilon,
                a.EmbeddingNormalized.AsSpan(t * hidden, hidden), row);
        }

        for (int l = 0; l < p.Layers.Length; l++)
        {
            LayerParameters w = p.Layers[l];
            LayerActivations s = a.Layers[l];
            Span<float> output = (l + 1 < p.Layers.Length ? a.Layers[l + 1].Input : a.States).AsSpan(0, n * hidden);
            ReadOnlySpan<float> input = s.Input.AsSpan(0, n * hidden);

            // Self-attention: Q, K, V projections, softmax(QKᵀ/√d)·V per head, output projection.
            DenseLinear.Forward(input, n, w.Query.Weight, w.Query.Bias, s.Query);
            DenseLinear.Forward(input, n, w.Key.Weight, w.Key.Bias, s.Key);
            DenseLinear.Forward(input, n, w.Value.Weight, w.Value.Bias, s.Value);
            TrainingAttention.Forward(s.Query, s.Key, s.Value, n, Config.HeadCount, Config.HeadSize, a.KeyValid, s.Probabilities, s.Context);
            Span<float> attended = s.Attended.AsSpan(0, n * hidden);
            DenseLinear.Forward(s.Context, n, w.AttentionOutput.Weight, w.AttentionOutput.Bias, attended);

            // Residual and LayerNorm.
            TensorPrimitives.Add(attended, input, attended);
            for (int t = 0; t < n; t++)
            {
                Span<float> row = attended.Slice(t * hidden, hidden);
                s.AttentionRstd[t] = LayerNorm.Forward(row, w.AttentionNormWeight, w.AttentionNormBias, Config.LayerNormEpsilon,
                    s.AttentionNormalized.AsSpan(t * hidden, hidden), row);
            }

            // Feed-forward: up, GELU, down, residual, LayerNorm.
            DenseLinear.Forward(attended, n, w.FeedForwardUp.Weight, w.FeedForwardUp.Bias, s.Up);
            Span<float> activated = s.Activated.AsSpan(0, n * ff);
            s.Up.AsSpan(0, n * ff).CopyTo(activated);
            Gelu.Apply(activated);
            DenseLinear.Forward(activated, n, w.FeedForwardDown.Weight, w.FeedForwardDown.Bias, output);
            TensorPrimitives.Add(output, attended, output);
            for (int t = 0; t < n; t++)
            {
                Span<float> row = output.Slice(t * hidden, hidden);
                s.OutputRstd[t] = LayerNorm.Forward(row, w.OutputNormWeight, w.OutputNormBias, Config.LayerNormEpsilon,
                    s.OutputNormalized.AsSpan(t * hidden, hidden), row);
            }
        }

        // Pooling, then L2 normalisation.
        Span<float> pooled = a.Pooled;
        if (Config.Pooling == Pooling.Cls)
        {
            a.States.AsSpan(0, hidden).CopyTo(pooled);
        }
        else
        {
            pooled.Clear();
            for (int t = 0; t < n; t++) TensorPrimitives.Add(pooled, a.States.AsSpan(t * hidden, hidden), pooled);
            TensorPrimitives.Multiply(pooled, 1f / n, pooled);
        }
        a.PooledNorm = TensorPrimitives.Norm(pooled);
        TensorPrimitives.Multiply(pooled, 1f / a.PooledNorm, a.Embedding);
        return a.Embedding;
    }

    /// <summary>
    /// Adds to <paramref name="gradients"/> the gradient of a loss whose derivative is <paramref name="dEmbedding"/> with
    /// respect to the sentence embedding and <paramref name="dStates"/> (tokens, hidden; may be empty) with respect to
    /// the token states, for the sentence last run through <see cref="Forward"/> with <paramref name="a"/>.
    /// </summary>
    public void Backward(TrainingActivations a, ReadOnlySpan<float> dEmbedding, ReadOnlySpan<float> dStates, BertParameters gradients)
    {
        int n = a.Count, hidden = Config.HiddenSize, ff = Config.FeedForwardSize;
        if (dEmbedding.Length != hidden || (!dStates.IsEmpty && dStates.Length < n * hidden))
        {
            throw new ArgumentException($"the embedding's gradient needs {hidden} values (has {dEmbedding.Length}) and the states' {n * hidden} or none (has {dStates.Length})");
        }
        BertParameters p = Parameters;

        // Through the L2 normalisation: d(pooled) = (de − e·(e·de)) / ‖pooled‖.
        Span<float> dPooled = a.Scratch.AsSpan(0, hidden);
        TensorPrimitives.MultiplyAdd(a.Embedding, -TensorPrimitives.Dot(a.Embedding, dEmbedding), dEmbedding, dPooled);
        TensorPrimitives.Multiply(dPooled, 1f / a.PooledNorm, dPooled);

        // Through pooling into d(states); dX is the gradient of the current layer's output.
        Span<float> dX = a.GradientA.AsSpan(0, n * hidden);
        if (dStates.IsEmpty) dX.Clear();
        else dStates[..(n * hidden)].CopyTo(dX);
        if (Config.Pooling == Pooling.Cls)
        {
            TensorPrimitives.Add(dX[..hidden], dPooled, dX[..hidden]);
        }
        else
        {
            for (int t = 0; t < n; t++) TensorPrimitives.MultiplyAdd(dPooled, 1f / n, dX.Slice(t * hidden, hidden), dX.Slice(t * hidden, hidden));
        }

        Span<float> dAttended = a.GradientB.AsSpan(0, n * hidden);
        Span<float> dTemp = a.GradientC.AsSpan(0, n * hidden);
        Span<float> dUp = a.GradientFeedForward.AsSpan(0, n * ff);
        Span<float> dActivated = a.GradientActivated.AsSpan(0, n * ff);
        for (int l = p.Layers.Length - 1; l >= 0; l--)
        {
            LayerParameters w = p.Layers[l];
            LayerParameters g = gradients.Layers[l];
            LayerActivations s = a.Layers[l];
            ReadOnlySpan<float> input = s.Input.AsSpan(0, n * hidden);
            ReadOnlySpan<float> attended = s.Attended.AsSpan(0, n * hidden);

            // Output LayerNorm: d(attended + down) into dAttended; the residual carries it to the attention output too.
            for (int t = 0; t < n; t++)
            {
                LayerNorm.Backward(dX.Slice(t * hidden, hidden), s.OutputNormalized.AsSpan(t * hidden, hidden), s.OutputRstd[t], w.OutputNormWeight,
                    dAttended.Slice(t * hidden, hidden), g.OutputNormWeight, g.OutputNormBias, a.Scratch);
            }
            // Feed-forward down, GELU, up; the up projection's input gradient adds to the residual's.
            DenseLinear.Backward(dAttended, s.Activated, n, w.FeedForwardDown.Weight, dActivated, g.FeedForwardDown.Weight, g.FeedForwardDown.Bias);
            Gelu.BackwardReference(s.Up.AsSpan(0, n * ff), dActivated, dUp);
            DenseLinear.Backward(dUp, attended, n, w.FeedForwardUp.Weight, dTemp, g.FeedForwardUp.Weight, g.FeedForwardUp.Bias);
            TensorPrimitives.Add(dAttended, dTemp, dAttended);

            // Attention LayerNorm: into d(input + attention output), which dX now holds.
            for (int t = 0; t < n; t++)
            {
                LayerNorm.Backward(dAttended.Slice(t * hidden, hidden), s.AttentionNormalized.AsSpan(t * hidden, hidden), s.AttentionRstd[t], w.AttentionNormWeight,
                    dX.Slice(t * hidden, hidden), g.AttentionNormWeight, g.AttentionNormBias, a.Scratch);
            }
            // Output projection, attention, then Q, K, V projections; their input gradients add to the residual's in dX.
            DenseLinear.Backward(dX, s.Context, n, w.AttentionOutput.Weight, dTemp, g.AttentionOutput.Weight, g.AttentionOutput.Bias);
            TrainingAttention.Backward(dTemp, s.Query, s.Key, s.Value, n, Config.HeadCount, Config.HeadSize, a.KeyValid, s.Probabilities,
                a.GradientQuery, a.GradientKey, a.GradientValue, a.Scratch);
            DenseLinear.Backward(a.GradientQuery, input, n, w.Query.Weight, dTemp, g.Query.Weight, g.Query.Bias);
            TensorPrimitives.Add(dX, dTemp, dX);
            DenseLinear.Backward(a.GradientKey, input, n, w.Key.Weight, dTemp, g.Key.Weight, g.Key.Bias);
            TensorPrimitives.Add(dX, dTemp, dX);
            DenseLinear.Backward(a.GradientValue, input, n, w.Value.Weight, dTemp, g.Value.Weight, g.Value.Bias);
            TensorPrimitives.Add(dX, dTemp, dX);
        }

        // Embedding LayerNorm, then the three tables (token type 0 for every token).
        for (int t = 0; t < n; t++)
        {
            Span<float> dSum = dTemp.Slice(t * hidden, hidden);
            LayerNorm.Backward(dX.Slice(t * hidden, hidden), a.EmbeddingNormalized.AsSpan(t * hidden, hidden), a.EmbeddingRstd[t], p.EmbeddingNormWeight,
                dSum, gradients.EmbeddingNormWeight, gradients.EmbeddingNormBias, a.Scratch);
            Span<float> token = gradients.TokenEmbeddings.AsSpan(a.Tokens[t] * hidden, hidden);
            TensorPrimitives.Add(token, dSum, token);
            Span<float> position = gradients.PositionEmbeddings.AsSpan(t * hidden, hidden);
            TensorPrimitives.Add(position, dSum, position);
            Span<float> type = gradients.TokenTypeEmbeddings.AsSpan(0, hidden);
            TensorPrimitives.Add(type, dSum, type);
        }
    }
}
