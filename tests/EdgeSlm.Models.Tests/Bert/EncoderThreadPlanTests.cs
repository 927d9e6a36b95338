using EdgeSlm.Kernels.Formats;
using EdgeSlm.Models.Bert;
using EdgeSlm.Models.Conversion;
using EdgeSlm.Testing;

namespace EdgeSlm.Models.Tests.Bert;

/// <summary>The thread choice from given timings: pure, no clock.</summary>
public sealed class EncoderThreadPlanTests(ConvertedModels models)
{
    private static ThreadTiming T(int tokens, int threads, double ms) => new(tokens, threads, ms);

    [Fact]
    public void Short_inputs_stay_on_one_thread_until_two_are_faster_by_the_required_gain()
    {
        // The embed benchmark's situation: a 10-token utterance slower on 2 threads; long inputs faster.
        EncoderThreadPlan plan = EncoderThreadPlan.Choose([
            T(6, 1, 0.60), T(6, 2, 0.80),
            T(12, 1, 1.00), T(12, 2, 1.32),
            T(24, 1, 2.00), T(24, 2, 1.95),  // 2.5% faster: not enough
            T(48, 1, 4.00), T(48, 2, 2.60),
            T(96, 1, 8.00), T(96, 2, 4.60),
        ]);
        Assert.Equal([new ThreadStep(0, 1), new ThreadStep(48, 2)], plan.Steps);
        Assert.Equal(1, plan.ThreadsFor(1));
        Assert.Equal(1, plan.ThreadsFor(47));
        Assert.Equal(2, plan.ThreadsFor(48));
        Assert.Equal(2, plan.ThreadsFor(5000));
        Assert.True(plan.IsMeasured);
        Assert.Equal("1 thread below 48 tokens, 2 from 48 (measured)", plan.ToString());
    }

    [Fact]
    public void Each_cell_counts_by_its_median_so_one_disturbed_sample_does_not_decide()
    {
        EncoderThreadPlan plan = EncoderThreadPlan.Choose([
            T(10, 1, 1.0), T(10, 1, 1.1), T(10, 1, 9.0), // a neighbour took the core once
            T(10, 2, 1.3), T(10, 2, 1.2), T(10, 2, 1.25),
        ]);
        Assert.Equal(1, plan.ThreadsFor(10));
        Assert.Equal(new ThreadTiming(10, 1, 1.1), plan.Timings[0]);
        Assert.Equal(new ThreadTiming(10, 2, 1.25), plan.Timings[1]);
    }

    [Fact]
    public void A_short_length_gets_no_more_threads_than_a_longer_one_chose()
    {
        // 2 threads won at 12 tokens (noise) but lost at 24: the split starts at 48, where it holds from there on.
        EncoderThreadPlan plan = EncoderThreadPlan.Choose([
            T(12, 1, 1.0), T(12, 2, 0.8),
            T(24, 1, 2.0), T(24, 2, 2.1),
            T(48, 1, 4.0), T(48, 2, 2.5),
        ]);
        Assert.Equal([new ThreadStep(0, 1), new ThreadStep(48, 2)], plan.Steps);
    }

    [Fact]
    public void Four_threads_must_beat_two_not_only_one()
    {
        EncoderThreadPlan plan = EncoderThreadPlan.Choose([
            T(12, 1, 1.0), T(12, 2, 1.2), T(12, 4, 1.5),
            T(48, 1, 4.0), T(48, 2, 2.4), T(48, 4, 2.35), // 4 is 2% faster than 2: keeps 2
            T(96, 1, 8.0), T(96, 2, 4.4), T(96, 4, 3.0),
        ]);
        Assert.Equal([new ThreadStep(0, 1), new ThreadStep(48, 2), new ThreadStep(96, 4)], plan.Steps);
        Assert.Equal("1 thread below 48 tokens, 2 from 48 up to 95, 4 from 96 (measured)", plan.ToString());
    }

    [Fact]
    public void When_splitting_always_pays_every_input_gets_all_threads_and_when_never_none()
    {
        EncoderThreadPlan always = EncoderThreadPlan.Choose([T(6, 1, 1.0), T(6, 2, 0.6), T(96, 1, 8.0), T(96, 2, 4.2)]);
        Assert.Equal([new ThreadStep(0, 2)], always.Steps);
        Assert.Equal(2, always.ThreadsFor(1));
        EncoderThreadPlan never = EncoderThreadPlan.Choose([T(6, 1, 1.0), T(6, 2, 1.6), T(96, 1, 8.0), T(96, 2, 7.9)]);
        Assert.Equal([new ThreadStep(0, 1)], never.Steps);
        Assert.Equal("1 thread for every input (measured)", never.ToString());
    }

    [Fact]
    public void Fixed_plans_and_bad_timings()
    {
        EncoderThreadPlan fixedPlan = EncoderThreadPlan.Fixed(3);
        Assert.Equal(3, fixedPlan.ThreadsFor(1));
        Assert.False(fixedPlan.IsMeasured);
        Assert.Equal("3 threads for every input", fixedPlan.ToString());
        Assert.Throws<ArgumentException>(() => EncoderThreadPlan.Choose([]));
        Assert.Throws<ArgumentException>(() => EncoderThreadPlan.Choose([T(6, 1, double.NaN)]));
        Assert.Throws<ArgumentException>(() => EncoderThreadPlan.Choose([T(0, 1, 1.0)]));
        Assert.Throws<ArgumentOutOfRangeException>(() => EncoderThreadPlan.Fixed(0));
    }

    [Fact]
    public void Measuring_times_every_length_at_each_thread_count_and_restores_the_encoders_plan()
    {
        using BertModel model = BertModel.Load(models.Path(BundledModel.MiniLM, QuantType.Q4_0));
        using var encoder = new BertEncoder(model, threads: 2);
        var before = EncoderThreadPlan.Fixed(2);
        encoder.ThreadPlan = before;
        EncoderThreadPlan plan = EncoderThreadPlan.Measure(encoder, [4, 9], rounds: 3);
        Assert.Same(before, encoder.ThreadPlan);
        Assert.Equal([(4, 1), (4, 2), (9, 1), (9, 2)], plan.Timings.Select(t => (t.Tokens, t.Threads)));
        Assert.All(plan.Timings, t => Assert.True(t.Milliseconds > 0));

        using var single = new BertEncoder(model, threads: 1);
        Assert.Equal([new ThreadStep(0, 1)], EncoderThreadPlan.Measure(single).Steps);
    }

    [Fact]
    public void Each_pass_takes_the_threads_its_token_count_gets_and_the_same_embeddings()
    {
        using BertModel model = BertModel.Load(models.Path(BundledModel.MiniLM, QuantType.Q4_0));
        using var encoder = new BertEncoder(model, threads: 2);
        int[] shortInput = [101, 2000, 2001, 2002, 2003, 102];
        int[] longInput = Enumerable.Range(0, 50).Select(i => 2000 + i).ToArray();
        var split = new float[model.Config.HiddenSize];
        var planned = new float[model.Config.HiddenSize];
        encoder.Encode(shortInput, [shortInput.Length], split);
        Assert.Equal(2, encoder.ThreadsOfLastPass);

        encoder.ThreadPlan = EncoderThreadPlan.Choose([T(6, 1, 1.0), T(6, 2, 2.0), T(48, 1, 4.0), T(48, 2, 2.5)]);
        encoder.Encode(shortInput, [shortInput.Length], planned);
        Assert.Equal(1, encoder.ThreadsOfLastPass);
        Assert.Equal(split, planned);
        encoder.Encode(longInput, [longInput.Length], planned);
        Assert.Equal(2, encoder.ThreadsOfLastPass);

        // The thermal governor's cap still applies on top of the plan.
        encoder.ActiveThreads = 1;
        encoder.Encode(longInput, [longInput.Length], planned);
        Assert.Equal(1, encoder.ThreadsOfLastPass);
    }
}
