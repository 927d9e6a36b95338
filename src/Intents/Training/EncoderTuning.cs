using System.Diagnostics;
using System.Numerics.Tensors;
using EdgeSlm.Intents.Examples;
using EdgeSlm.Intents.Tagging;
using EdgeSlm.Models.Bert;
using EdgeSlm.Models.Bert.Training;
using EdgeSlm.Models.Tokenizers;

namespace EdgeSlm.Intents.Training;

/// <summary>How the encoder is fine-tuned (BERT's recipe: AdamW, linear warm-up then linear decay, a few epochs).</summary>
/// <param name="LearningRate">The encoder's peak learning rate.</param>
/// <param name="HeadLearningRate">The first rate of the intent and slot heads, which start from zero (no warm-up, linear decay).</param>
/// <param name="WarmupShare">Share of all steps over which the rates rise from 0 to their peak.</param>
/// <param name="SlotLossWeight">Weight of the per-piece BIO cross-entropy beside the intent's (0: intents only).</param>
/// <param name="MaxTokens">Pieces kept per sentence, [CLS] and [SEP] included; longer ones are cut.</param>
/// <param name="Threads">Threads over the sentences of a batch; the result does not depend on it (see <see cref="EncoderTuning"/>).</param>
public sealed record TuningSettings(int Epochs = 3, int BatchSize = 32, float LearningRate = 5e-5f, float HeadLearningRate = 1e-2f,
    float WarmupShare = 0.1f, float WeightDecay = 0.01f, float SlotLossWeight = 1f, int MaxTokens = 64, int Seed = 20261206, int Threads = 2)
{
    public void Validate()
    {
        if (Epochs < 1 || BatchSize < 1 || MaxTokens < 3 || Threads < 1) throw new ArgumentException($"tuning needs at least 1 epoch, 1 sentence per batch, 3 tokens and 1 thread (epochs {Epochs}, batch {BatchSize}, tokens {MaxTokens}, threads {Threads})");
        if (!(LearningRate >= 0) || !(HeadLearningRate >= 0) || !(WeightDecay >= 0) || !(SlotLossWeight >= 0)) throw new ArgumentException("tuning rates, weight decay and the slot loss weight must be 0 or more");
        if (!(WarmupShare >= 0 && WarmupShare < 1)) throw new ArgumentException($"the warm-up share {WarmupShare} must be from 0 to below 1");
    }
}

/// <summary>One epoch's mean losses (per sentence) and the intent accuracy of the tuning head on the sentences as they were trained.</summary>
public sealed record TuningEpoch(int Epoch, double IntentLoss, double SlotLoss, double Accuracy, TimeSpan Elapsed);

/// <summary>
/// Fine-tunes a BERT encoder on intent examples, in place: the loss is the cross-entropy of a softmax intent head on
/// the pooled, normalised embedding (what the module's classifier reads) plus, where examples have slot spans, the
/// weighted mean cross-entropy of a per-piece softmax over BIO tags on the token states (the CRF stays the tagger at
/// inference; this only shapes the states it reads). Both heads are dropped afterwards: the module trains its own.
/// A batch's sentences are split into <see cref="Parts"/> fixed parts, each with its own gradients, run on up to
/// <see cref="TuningSettings.Threads"/> threads and summed in part order, so a seed gives the same weights on any
/// number of threads.
/// </summary>
public static class EncoderTuning
{
    private const int Parts = 2;

    public static IReadOnlyList<TuningEpoch> Tune(BertParameters parameters, WordPieceTokenizer tokenizer, IReadOnlyList<IntentExample> examples,
        TuningSettings settings, Action<TuningEpoch>? progress = null)
    {
        settings.Validate();
        if (examples.Count == 0)
        {
            throw new ArgumentException("tuning needs at least one example");
        }
        int hidden = parameters.Config.HiddenSize;
        int maxTokens = Math.Min(settings.MaxTokens, parameters.Config.ContextLength);
        string[] intents = examples.Select(e => e.Intent).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray();
        var intentIndex = intents.Select((c, i) => (c, i)).ToDictionary(p => p.c, p => p.i, StringComparer.Ordinal);
        string[] slots = examples.SelectMany(e => e.Slots).Where(s => s.End > s.Start).Select(s => s.Slot).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray();
        SlotTags? tags = slots.Length > 0 && settings.SlotLossWeight > 0 ? new SlotTags(slots) : null;
        Sentence[] sentences = examples.Select(e => Prepare(e, tokenizer, maxTokens, intentIndex[e.Intent], tags)).ToArray();

        var head = new Head(intents.Length, hidden);
        Head? slotHead = tags is null ? null : new Head(tags.Count, hidden);
        var encoder = new TrainableEncoder(parameters);
        var optimizer = new AdamW(parameters.Config, weightDecay: settings.WeightDecay);
        var parts = Enumerable.Range(0, Parts).Select(_ => new PartState(parameters.Config, maxTokens, head, slotHead)).ToArray();

        int stepsPerEpoch = (sentences.Length + settings.BatchSize - 1) / settings.BatchSize;
        int totalSteps = stepsPerEpoch * settings.Epochs, warmupSteps = (int)(settings.WarmupShare * totalSteps);
        var random = new Random(settings.Seed);
        int[] order = Enumerable.Range(0, sentences.Length).ToArray();
        var reports = new List<TuningEpoch>();
        var options = new ParallelOptions { MaxDegreeOfParallelism = Math.Min(Parts, settings.Threads) };
        int step = 0;
        for (int epoch = 1; epoch <= settings.Epochs; epoch++)
        {
            var clock = Stopwatch.StartNew();
            random.Shuffle(order);
            double intentLoss = 0, slotLoss = 0;
            int correct = 0;
            for (int first = 0; first < order.Length; first += settings.BatchSize)
            {
                int count = Math.Min(settings.BatchSize, order.Length - first);
                float scale = 1f / count;
                Parallel.For(0, Parts, options, p =>
                {
                    PartState part = parts[p];
                    part.Clear();
                    // Sentence i of the batch goes to part i mod Parts, whatever thread runs that part.
                    for (int i = p; i < count; i += Parts)
                    {
                        part.Accumulate(encoder, sentences[order[first + i]], head, slotHead, settings.SlotLossWeight, scale);
                    }
                });
                for (int p = 1; p < Parts; p++) parts[0].Add(parts[p]);
                step++;
                float rate = step <= warmupSteps ? (float)step / warmupSteps
                    : totalSteps == warmupSteps ? 1f : (float)(totalSteps - step + 1) / (totalSteps - warmupSteps);
                // The heads start from zero and need no warm-up (it protects the pretrained encoder from their early,
                // uninformed gradients); they decay linearly over all steps.
                float headRate = settings.HeadLearningRate * (totalSteps - step + 1) / totalSteps;
                optimizer.Step(parameters, parts[0].Gradients, parts[0].TouchedRows, settings.LearningRate * rate);
                head.Step(optimizer, parts[0].Head!, headRate);
                slotHead?.Step(optimizer, parts[0].SlotHead!, headRate);
                foreach (PartState part in parts)
                {
                    intentLoss += part.IntentLoss;
                    slotLoss += part.SlotLoss;
                    correct += part.Correct;
                }
            }
            var report = new TuningEpoch(epoch, intentLoss / sentences.Length, slotLoss / sentences.Length, (double)correct / sentences.Length, clock.Elapsed);
            reports.Add(report);
            progress?.Invoke(report);
        }
        return reports;
    }

    /// <summary>A tokenized example: its pieces (cut to the limit, [SEP] kept last), intent and BIO tags.</summary>
    private sealed record Sentence(int[] Tokens, int Intent, int[]? Tags);

    private static Sentence Prepare(IntentExample example, WordPieceTokenizer tokenizer, int maxTokens, int intent, SlotTags? tags)
    {
        int[] ids = tokenizer.Encode(example.Text);
        int[]? labels = null;
        if (tags is not null)
        {
            var starts = new int[ids.Length];
            var ends = new int[ids.Length];
            tokenizer.PieceRanges(example.Text, ids, starts, ends);
            labels = new int[ids.Length];
            tags.Label(example.Slots, starts, ends, labels);
        }
        if (ids.Length > maxTokens)
        {
            int sep = ids[^1];
            ids = ids[..maxTokens];
            ids[^1] = sep;
            if (labels is not null)
            {
                labels = labels[..maxTokens];
                labels[^1] = SlotTags.Outside;
            }
        }
        return new Sentence(ids, intent, labels);
    }

    /// <summary>A softmax layer on hidden vectors: logits = W·x + b, W (classes, hidden), with AdamW moments.</summary>
    private sealed class Head(int classes, int hidden)
    {
        public int Classes { get; } = classes;
        public int Hidden { get; } = hidden;
        public float[] Weight { get; } = new float[classes * hidden];   // (classes, hidden)
        public float[] Bias { get; } = new float[classes];              // (classes)
        private readonly float[] _mWeight = new float[classes * hidden], _vWeight = new float[classes * hidden];
        private readonly float[] _mBias = new float[classes], _vBias = new float[classes];
        private int _steps;

        public Head Gradients() => new(Classes, Hidden);

        public void Clear()
        {
            Array.Clear(Weight);
            Array.Clear(Bias);
        }

        public void Add(Head other)
        {
            TensorPrimitives.Add(Weight, other.Weight, Weight);
            TensorPrimitives.Add(Bias, other.Bias, Bias);
        }

        public void Step(AdamW optimizer, Head gradients, float rate)
        {
            _steps++;
            optimizer.Update(Weight, gradients.Weight, _mWeight, _vWeight, _steps, rate, optimizer.WeightDecay);
            optimizer.Update(Bias, gradients.Bias, _mBias, _vBias, _steps, rate, 0);
        }

        /// <summary>
        /// Cross-entropy of class <paramref name="target"/> for input <paramref name="x"/>, times <paramref name="scale"/>:
        /// adds its gradients to <paramref name="gradients"/> and to <paramref name="dx"/>; returns the unscaled loss
        /// and whether the arg-max was the target.
        /// </summary>
        public (double Loss, bool Correct) CrossEntropy(ReadOnlySpan<float> x, int target, float scale, Head gradients, Span<float> dx, Span<float> logits)
        {
            for (int c = 0; c < Classes; c++) logits[c] = TensorPrimitives.Dot(Weight.AsSpan(c * Hidden, Hidden), x) + Bias[c];
            bool correct = TensorPrimitives.IndexOfMax(logits[..Classes]) == target;
            float max = TensorPrimitives.Max(logits[..Classes]);
            TensorPrimitives.Subtract(logits[..Classes], max, logits[..Classes]);
            TensorPrimitives.Exp(logits[..Classes], logits[..Classes]);
            float sum = TensorPrimitives.Sum(logits[..Classes]);
            double loss = -Math.Log(Math.Max(logits[target] / sum, 1e-30));
            for (int c = 0; c < Classes; c++)
            {
                float g = (logits[c] / sum - (c == target ? 1 : 0)) * scale;
                if (g == 0) continue;
                TensorPrimitives.MultiplyAdd(x, g, gradients.Weight.AsSpan(c * Hidden, Hidden), gradients.Weight.AsSpan(c * Hidden, Hidden));
                gradients.Bias[c] += g;
                TensorPrimitives.MultiplyAdd(Weight.AsSpan(c * Hidden, Hidden), g, dx, dx);
            }
            return (loss, correct);
        }
    }

    /// <summary>One part of a batch: its activations, gradients (encoder and heads) and loss sums.</summary>
    private sealed class PartState
    {
        private readonly TrainingActivations _activations;
        private readonly HashSet<int> _touched = new();
        private readonly float[] _dEmbedding, _dStates, _logits;

        public PartState(BertConfig config, int maxTokens, Head head, Head? slotHead)
        {
            _activations = new TrainingActivations(config, maxTokens);
            Gradients = new BertParameters(config);
            Head = head.Gradients();
            SlotHead = slotHead?.Gradients();
            _dEmbedding = new float[config.HiddenSize];
            _dStates = new float[maxTokens * config.HiddenSize];
            _logits = new float[Math.Max(head.Classes, slotHead?.Classes ?? 0)];
        }

        public BertParameters Gradients { get; }
        public Head? Head { get; }
        public Head? SlotHead { get; }
        public IReadOnlyCollection<int> TouchedRows => _touched;
        public double IntentLoss { get; private set; }
        public double SlotLoss { get; private set; }
        public int Correct { get; private set; }

        public void Clear()
        {
            Gradients.Clear(_touched);
            _touched.Clear();
            Head!.Clear();
            SlotHead?.Clear();
            IntentLoss = SlotLoss = 0;
            Correct = 0;
        }

        /// <summary>Adds <paramref name="other"/>'s gradients (token rows: only those it touched) to this part's.</summary>
        public void Add(PartState other)
        {
            int hidden = Gradients.Config.HiddenSize;
            foreach ((NamedTensor mine, NamedTensor theirs) in Gradients.Tensors.Zip(other.Gradients.Tensors))
            {
                if (ReferenceEquals(mine.Values, Gradients.TokenEmbeddings))
                {
                    foreach (int row in other._touched)
                    {
                        TensorPrimitives.Add(mine.Values.AsSpan(row * hidden, hidden), theirs.Values.AsSpan(row * hidden, hidden), mine.Values.AsSpan(row * hidden, hidden));
                        _touched.Add(row);
                    }
                    continue;
                }
                TensorPrimitives.Add(mine.Values, theirs.Values, mine.Values);
            }
            Head!.Add(other.Head!);
            SlotHead?.Add(other.SlotHead!);
        }

        public void Accumulate(TrainableEncoder encoder, Sentence sentence, Head head, Head? slotHead, float slotWeight, float scale)
        {
            int n = sentence.Tokens.Length, hidden = Gradients.Config.HiddenSize;
            ReadOnlySpan<float> embedding = encoder.Forward(sentence.Tokens, _activations);
            Array.Clear(_dEmbedding);
            (double loss, bool correct) = head.CrossEntropy(embedding, sentence.Intent, scale, Head!, _dEmbedding, _logits);
            IntentLoss += loss;
            Correct += correct ? 1 : 0;
            Span<float> dStates = [];
            if (slotHead is not null && sentence.Tags is not null && n > 2)
            {
                // The pieces between [CLS] and [SEP], each weighted 1/(pieces) so a sentence counts once whatever its length.
                dStates = _dStates.AsSpan(0, n * hidden);
                dStates.Clear();
                float pieceScale = scale * slotWeight / (n - 2);
                double sentenceLoss = 0;
                for (int t = 1; t < n - 1; t++)
                {
                    sentenceLoss += slotHead.CrossEntropy(_activations.States.AsSpan(t * hidden, hidden), sentence.Tags[t], pieceScale, SlotHead!,
                        dStates.Slice(t * hidden, hidden), _logits).Loss;
                }
                SlotLoss += sentenceLoss / (n - 2);
            }
            encoder.Backward(_activations, _dEmbedding, dStates, Gradients);
            foreach (int token in sentence.Tokens) _touched.Add(token);
        }
    }
}
